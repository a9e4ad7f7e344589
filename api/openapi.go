package api

import (
	_ "embed" // the OpenAPI document
	"net/http"
)

// openapiDoc is the OpenAPI 3.1 description of every route. It is written
// as JSON, which is valid YAML, so it is served as openapi.yaml and as
// openapi.json, and the tests check it without a YAML library.
//
//go:embed openapi.yaml
var openapiDoc []byte

// serveOpenAPI serves the document with the given content type; it needs
// no credentials.
func serveOpenAPI(ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(openapiDoc)
	}
}
