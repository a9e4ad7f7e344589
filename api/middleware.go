package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/acmehub/acmehub/internal/hub"
	"github.com/acmehub/acmehub/internal/secret"
)

type ctxKey int

const (
	keyRequestInfo ctxKey = iota
	keyGrant
)

// requestInfo is filled in as the request passes the middleware, so the
// access line written at the end can name the token that was used.
type requestInfo struct {
	id      string
	tokenID string
	source  netip.Addr
}

func info(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(keyRequestInfo).(*requestInfo)
	if ri == nil {
		return &requestInfo{}
	}
	return ri
}

func requestID(ctx context.Context) string { return info(ctx).id }

func grant(ctx context.Context) hub.Grant {
	g, _ := ctx.Value(keyGrant).(hub.Grant)
	return g
}

// recoverPanics turns a handler panic into a 500 and one log line.
func (a *API) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				a.log.ErrorContext(r.Context(), "handler panic", "req_id", requestID(r.Context()), "panic", v, "stack", string(debug.Stack()))
				writeProblem(w, http.StatusInternalServerError, codeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer: a
// present's wait extends the write deadline through it (extendWrite).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// extendWrite lets this response be written until d from now, past the
// server's WriteTimeout (30 s), which would otherwise cut a long wait
// without an answer. A writer that cannot (a test recorder) is logged at
// debug: the wait still runs, bounded by the server's own timeout.
func (a *API) extendWrite(w http.ResponseWriter, r *http.Request, d time.Duration) {
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d)); err != nil {
		a.log.DebugContext(r.Context(), "write deadline not extended", "req_id", requestID(r.Context()), "err", err)
	}
}

// accessLog gives every request an id and writes one line when it ends.
func (a *API) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requestID(r.Context()) != "" {
			next.ServeHTTP(w, r)
			return
		}
		var b [8]byte
		_, _ = rand.Read(b[:])
		ri := &requestInfo{id: hex.EncodeToString(b[:]), source: a.cfg.Proxy.clientAddr(r)}
		r = r.WithContext(context.WithValue(r.Context(), keyRequestInfo, ri))
		w.Header().Set("X-Request-ID", ri.id)
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(sw, r)
		a.log.InfoContext(r.Context(), "http request",
			"req_id", ri.id, "method", r.Method, "path", logPath(r.URL.Path), "status", sw.status,
			"bytes", sw.bytes, "remote", ri.source.String(), "token_id", ri.tokenID,
			"duration", time.Since(start).Seconds())
	})
}

// logPath is the path as the access log shows it. A requeststatus path ends
// in an operation id, which is the capability to read the operation, so the
// line shows "{id}" instead; any case, since a mistyped path may still carry
// a real id.
func logPath(path string) string {
	const status = certifyPrefix + "/requeststatus/"
	if len(path) > len(status) && strings.EqualFold(path[:len(status)], status) {
		return status + "{id}"
	}
	return path
}

// limitBody caps request bodies; handlers see an error past the limit and
// answer 413 through decodeJSON.
func (a *API) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > a.cfg.MaxBody {
			writeProblem(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body too large")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBody)
		next.ServeHTTP(w, r)
	})
}

// authenticate requires valid client credentials in any accepted form and
// stores the principal in the context.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, ok := secret.CredentialsFromRequest(r)
		if !ok {
			a.writeError(w, r, hub.ErrUnauthenticated)
			return
		}
		g, err := a.svc.Authenticate(r.Context(), cred, info(r.Context()).source)
		if err != nil {
			if !errors.Is(err, hub.ErrUnauthenticated) && !errors.Is(err, hub.ErrRateLimited) {
				a.log.ErrorContext(r.Context(), "authentication failed", "req_id", requestID(r.Context()), "err", err)
				err = hub.ErrUnauthenticated
			}
			a.writeError(w, r, err)
			return
		}
		info(r.Context()).tokenID = g.Principal.TokenID
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyGrant, g)))
	})
}
