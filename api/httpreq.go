package api

import "github.com/gorilla/mux"

// httpreqRoutes registers lego's httpreq protocol under Config.HTTPReqPath.
func (a *API) httpreqRoutes(_ *mux.Router) {}
