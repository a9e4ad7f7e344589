package api

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/acmehub/acmehub/internal/upstream/catalog"
)

// The provider catalogue (lego's DNS providers and the fields each
// needs) is public knowledge, so any authenticated token may read it.

// ProviderFieldJSON is one setting of a provider: the environment
// variable lego reads and what it means.
type ProviderFieldJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// ProviderSummaryJSON is a provider in the list: its credential field names.
type ProviderSummaryJSON struct {
	Code        string   `json:"code"`
	Name        string   `json:"name"`
	Credentials []string `json:"credentials"`
}

// ProviderJSON is one provider with every field described.
type ProviderJSON struct {
	Code        string              `json:"code"`
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	URL         string              `json:"url,omitempty"`
	Aliases     []string            `json:"aliases,omitempty"`
	Credentials []ProviderFieldJSON `json:"credentials"`
	Optional    []ProviderFieldJSON `json:"optional"`
}

// ToProviderSummaryJSON is the list form of p.
func ToProviderSummaryJSON(p catalog.Provider) ProviderSummaryJSON {
	out := ProviderSummaryJSON{Code: p.Code, Name: p.Name, Credentials: make([]string, 0, len(p.Credentials))}
	for _, f := range p.Credentials {
		out.Credentials = append(out.Credentials, f.Name)
	}
	return out
}

// ToProviderJSON is the full form of p.
func ToProviderJSON(p catalog.Provider) ProviderJSON {
	return ProviderJSON{
		Code: p.Code, Name: p.Name, Description: p.Description, URL: p.URL, Aliases: p.Aliases,
		Credentials: toFieldsJSON(p.Credentials), Optional: toFieldsJSON(p.Optional),
	}
}

func toFieldsJSON(fs []catalog.Field) []ProviderFieldJSON {
	out := make([]ProviderFieldJSON, 0, len(fs)) // [] rather than null in JSON
	for _, f := range fs {
		out = append(out, ProviderFieldJSON{f.Name, f.Description})
	}
	return out
}

func (a *API) listProviders(w http.ResponseWriter, _ *http.Request) {
	all := catalog.All()
	out := make([]ProviderSummaryJSON, 0, len(all))
	for _, p := range all {
		out = append(out, ToProviderSummaryJSON(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"providers": out})
}

func (a *API) getProvider(w http.ResponseWriter, r *http.Request) {
	p, ok := catalog.Lookup(mux.Vars(r)["code"])
	if !ok {
		writeProblem(w, http.StatusNotFound, codeNotFound, "no such provider (GET /api/v1/providers lists them)")
		return
	}
	writeJSON(w, http.StatusOK, ToProviderJSON(p))
}
