package api

import "github.com/gorilla/mux"

// certifyRoutes registers the Certify Management Hub managed challenge API.
func (a *API) certifyRoutes(_ *mux.Router) {}
