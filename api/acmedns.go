package api

import "github.com/gorilla/mux"

// acmeDNSRoutes registers the acme-dns API under Config.ACMEDNSPath and the
// lego acme-dns account storage.
func (a *API) acmeDNSRoutes(_ *mux.Router) {}
