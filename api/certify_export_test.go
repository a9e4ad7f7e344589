package api

// SetCertifyOpsLimits shrinks the Certify operation store of a (zero keeps
// a limit) so that tests can fill it. Call it before any requestbegin.
func SetCertifyOpsLimits(a *API, maxOps, perOwner int) {
	o := a.certifyOps
	o.mu.Lock()
	defer o.mu.Unlock()
	if maxOps > 0 {
		o.cfg.Max = maxOps
	}
	if perOwner > 0 {
		o.cfg.PerOwner = perOwner
	}
}
