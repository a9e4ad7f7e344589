package metrics

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDelegationAndValueGauges(t *testing.T) {
	t.Parallel()
	m := New(nil)
	set := m.Delegations([]string{"ok", "missing", "unchecked"})
	set(map[string]int{"ok": 3, "missing": 1})
	n, fail := 7, false
	m.Values(func(context.Context) (int, error) {
		if fail {
			return 0, errors.New("db gone")
		}
		return n, nil
	})
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	body := scrape()
	for _, want := range []string{`acmehub_delegations{state="ok"} 3`, `acmehub_delegations{state="missing"} 1`,
		`acmehub_delegations{state="unchecked"} 0`, "acmehub_txt_values 7"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	set(map[string]int{"missing": 4})
	fail = true
	body = scrape()
	for _, want := range []string{`acmehub_delegations{state="ok"} 0`, `acmehub_delegations{state="missing"} 4`, "acmehub_txt_values 7"} {
		if !strings.Contains(body, want) {
			t.Errorf("after a change, metrics lack %q", want)
		}
	}
}
