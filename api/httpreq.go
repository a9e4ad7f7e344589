package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/hub"
)

// lego's httpreq DNS provider (also inside Traefik) and acme.sh's
// dns_acmeproxy speak this protocol (PROTOCOLS.md §4):
//
//	POST {prefix}/present and POST {prefix}/cleanup, HTTP Basic client id / secret
//	default mode: {"fqdn":"_acme-challenge.example.org.","value":"<txt>"}
//	              (lego follows CNAMEs, so fqdn is often "<label>.<hub zone>.")
//	RAW mode:     {"domain":"example.org","token":"...","keyAuth":"..."}
//
// The mode is decided by which fields the body holds; keys match
// case-insensitively (acmeproxy's own server reads "keyauth"). A success is
// 200 with the request echoed in its own key spelling, plus "value" in RAW
// mode: acme.sh greps the body for "<value>" and lego only reads the status.
// Errors are the API's one-line problem documents (lego prints the body
// after the status, acme.sh prints it whole); they never contain the value
// in quotes, so acme.sh cannot mistake one for a success.

// httpreqTimeout bounds one present or clean-up, well inside lego's 30 s
// HTTP client timeout, so the client reads an answer rather than a timeout.
const httpreqTimeout = 20 * time.Second

// httpreqRoutes registers lego's httpreq protocol under Config.HTTPReqPath.
func (a *API) httpreqRoutes(r *mux.Router) {
	prefix := strings.TrimSuffix(a.cfg.HTTPReqPath, "/")
	for _, action := range []string{"present", "cleanup"} {
		h := basicChallenge(a.authenticate(a.httpreq(action == "present")))
		r.Handle(prefix+"/"+action, h).Methods(http.MethodPost).Name("compat:httpreq-" + action)
	}
}

// httpreq serves one action: present, or else clean-up.
func (a *API) httpreq(present bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := a.decodeHTTPReq(w, r)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), httpreqTimeout)
		defer cancel()
		g, source := grant(ctx), info(ctx).source

		// Default mode names the record (the hub maps "_acme-challenge.<domain>."
		// and the delegation's name alike to the domain); RAW mode names the
		// domain, and the value is computed from the key authorization.
		identifier, value := body.fqdn.val, body.value.val
		if body.raw {
			identifier, value = body.domain.val, keyAuthValue(body.keyAuth.val)
		}
		var err error
		if present {
			var ch hub.Challenge
			ch, err = a.svc.Present(ctx, g, hub.PresentRequest{
				Identifier: identifier, Value: body.value.val, KeyAuthorization: body.keyAuth.val, Source: source,
			})
			value = ch.Value
		} else {
			// Clean-up only ever removes, in either mode; removing what is
			// not there succeeds, so clients may retry.
			_, err = a.svc.Cleanup(ctx, g, identifier, value, source)
		}
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writeHTTPReqEcho(w, body, value)
	}
}

// httpreqField is a string field of the body with the key as the client
// spelled it.
type httpreqField struct {
	key, val string
	set      bool
}

// httpreqBody is a decoded body: raw says RAW mode.
type httpreqBody struct {
	fqdn, value, domain, token, keyAuth httpreqField
	raw                                 bool
}

// errHTTPReqShape is the 400 detail for a body of neither shape.
const errHTTPReqShape = `the body must be {"fqdn":"_acme-challenge.<domain>.","value":"<txt>"} or, in RAW mode, {"domain":"<domain>","token":"<token>","keyAuth":"<key authorization>"}`

// decodeHTTPReq reads the body, or answers 400 or 413 and returns false.
func (a *API) decodeHTTPReq(w http.ResponseWriter, r *http.Request) (httpreqBody, bool) {
	b, err := parseHTTPReq(r.Body)
	var tooBig *http.MaxBytesError
	var shape shapeError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return b, true
	case errors.As(err, &tooBig):
		writeProblem(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
	case errors.As(err, &shape):
		writeProblem(w, http.StatusBadRequest, codeBadRequest, shape.Error())
	case errors.Is(err, io.EOF):
		writeProblem(w, http.StatusBadRequest, codeMalformedJSON, "the request body is empty; "+errHTTPReqShape)
	case errors.As(err, &typ) && typ.Field == "":
		writeProblem(w, http.StatusBadRequest, codeMalformedJSON, "the request body is not a JSON object; "+errHTTPReqShape)
	default:
		writeProblem(w, http.StatusBadRequest, codeMalformedJSON, "the request body is not valid JSON for this endpoint: "+jsonErrorText(err))
	}
	return httpreqBody{}, false
}

// shapeError is a well-formed JSON body of the wrong shape.
type shapeError string

func (e shapeError) Error() string { return string(e) }

// parseHTTPReq decodes one JSON object of string fields and decides the
// mode. Unknown and repeated fields are refused, as the native API does.
func parseHTTPReq(r io.Reader) (httpreqBody, error) {
	dec := json.NewDecoder(r)
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return httpreqBody{}, err
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return httpreqBody{}, err
		}
		return httpreqBody{}, errors.New("more than one JSON value in the body")
	}
	if m == nil { // the body was "null"
		return httpreqBody{}, shapeError(errHTTPReqShape)
	}
	var b httpreqBody
	for key, raw := range m {
		var f *httpreqField
		switch strings.ToLower(key) {
		case "fqdn":
			f = &b.fqdn
		case "value":
			f = &b.value
		case "domain":
			f = &b.domain
		case "token":
			f = &b.token
		case "keyauth":
			f = &b.keyAuth
		default:
			return httpreqBody{}, shapeError(fmt.Sprintf("unknown field %q; %s", key, errHTTPReqShape))
		}
		if f.set {
			return httpreqBody{}, shapeError(fmt.Sprintf("field %q is given twice", key))
		}
		if bytes.Equal(raw, []byte("null")) || json.Unmarshal(raw, &f.val) != nil {
			return httpreqBody{}, shapeError(fmt.Sprintf("field %q must be a string", key))
		}
		f.key, f.set = key, true
	}

	def := b.fqdn.set || b.value.set
	b.raw = b.domain.set || b.token.set || b.keyAuth.set
	switch {
	case def && b.raw:
		return httpreqBody{}, shapeError("the body mixes the default fields (fqdn, value) with the RAW ones (domain, token, keyAuth); " + errHTTPReqShape)
	case !def && !b.raw:
		return httpreqBody{}, shapeError(errHTTPReqShape)
	case def && (b.fqdn.val == "" || b.value.val == ""):
		return httpreqBody{}, shapeError(`fqdn and value are both required and must not be empty`)
	case def && strings.HasPrefix(b.fqdn.val, "*."):
		return httpreqBody{}, shapeError(`fqdn names the TXT record, "_acme-challenge.<domain>.", not a wildcard`)
	case b.raw && (b.domain.val == "" || b.keyAuth.val == ""):
		return httpreqBody{}, shapeError(`RAW mode needs domain and keyAuth (the value is computed from the key authorization)`)
	case b.raw && strings.HasPrefix(strings.ToLower(b.domain.val), "_acme-challenge."):
		return httpreqBody{}, shapeError(`in RAW mode, domain names the domain being validated, not its "_acme-challenge." record`)
	}
	return b, nil
}

// keyAuthValue is the DNS-01 TXT value of a key authorization (RFC 8555
// §8.4): base64url(SHA-256(keyAuth)) without padding.
func keyAuthValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// writeHTTPReqEcho answers 200 with the request's fields in the client's
// key spelling, in a fixed order, and the TXT value: default mode
// {"fqdn":...,"value":...}, RAW mode {"domain":...,"token":...,"keyAuth":...,"value":...}.
// Strings are written without HTML escaping, so the value appears exactly
// as published.
func writeHTTPReqEcho(w http.ResponseWriter, b httpreqBody, value string) {
	fields := []httpreqField{b.fqdn, {key: b.value.key, val: value, set: true}}
	if b.raw {
		fields = []httpreqField{b.domain, b.token, b.keyAuth, {key: "value", val: value, set: true}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for _, f := range fields {
		if !f.set {
			continue
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		_ = enc.Encode(f.key) // strings always encode
		buf.Truncate(buf.Len() - 1)
		buf.WriteByte(':')
		_ = enc.Encode(f.val)
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// basicChallenge adds the Basic challenge RFC 9110 requires on a 401: this
// protocol's credentials are HTTP Basic (client id as user, secret as
// password).
func basicChallenge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(challengeWriter{w}, r)
	})
}

type challengeWriter struct{ http.ResponseWriter }

func (c challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", `Basic realm="acmehub", charset="UTF-8"`)
	}
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (c challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
