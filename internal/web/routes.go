package web

import "net/http"

// routeTable is THE page table: every page the UI serves, with the least
// role it needs. The API checks the caller again on every call a page makes;
// this table decides who sees the page at all. Connections are listed for
// every role (names only for non-admins); changing them is for admins.
func (u *UI) routeTable() []Route {
	const get, post = http.MethodGet, http.MethodPost
	return []Route{
		pg(get, "/login", Public, u.loginPage),
		pg(post, "/login", Public, u.login),
		pg(post, "/logout", Viewer, u.logout),
		pg(get, "/{$}", Viewer, u.home),

		// Data > Profiles.
		pg(get, "/profiles", Viewer, u.profilesPage),
		upload(pg(post, "/profiles/import", Contributor, u.importProfiles)),

		// Data > Sources (admins) and the system refresh.
		pg(get, "/sources", Admin, u.sourcesPage),
		pg(get, "/sources/new", Admin, u.newSource),
		pg(post, "/sources/new", Admin, u.saveSource),
		pg(get, "/sources/{id}", Admin, u.sourcePage),
		pg(get, "/sources/{id}/edit", Admin, u.editSource),
		pg(post, "/sources/{id}/edit", Admin, u.saveSource),
		pg(post, "/sources/{id}/pull", Admin, u.pullSource),
		pg(post, "/sources/{id}/delete", Admin, u.deleteSource),
		pg(post, "/pulls/{id}/cancel", Admin, u.cancelPull),
		pg(post, "/refresh", Contributor, u.startRefresh),
		pg(get, "/refreshes/{id}", Viewer, u.refreshPage),

		// Data > Segments.
		pg(get, "/segments", Viewer, u.segmentsPage),
		pg(get, "/segments/new", Contributor, u.newSegment),
		pg(post, "/segments/new", Contributor, u.saveSegment),
		pg(post, "/segments/count", Contributor, u.countSegment),
		pg(get, "/segments/{id}", Viewer, u.segmentPage),
		pg(get, "/segments/{id}/edit", Contributor, u.editSegment),
		pg(post, "/segments/{id}/edit", Contributor, u.saveSegment),
		pg(post, "/segments/{id}/delete", Contributor, u.deleteSegment),

		// Data > Exports and their runs.
		pg(get, "/exports", Viewer, u.exportsPage),
		pg(get, "/exports/new", Contributor, u.newExport),
		pg(post, "/exports/new", Contributor, u.saveExport),
		pg(get, "/exports/{id}", Viewer, u.exportPage),
		pg(get, "/exports/{id}/edit", Contributor, u.editExport),
		pg(post, "/exports/{id}/edit", Contributor, u.saveExport),
		pg(post, "/exports/{id}/delete", Contributor, u.deleteExport),
		pg(post, "/exports/{id}/run", Contributor, u.runExport),
		pg(get, "/runs/{id}", Viewer, u.runPage),
		pg(get, "/runs/{id}/rejections.csv", Viewer, u.rejectionsCSV),
		pg(post, "/runs/{id}/cancel", Contributor, u.cancelRun),

		// System.
		pg(get, "/status", Viewer, u.statusPage),
		pg(get, "/tokens", Viewer, u.tokensPage),
		pg(post, "/tokens", Viewer, u.createToken),
		pg(post, "/tokens/{id}/revoke", Viewer, u.revokeToken),
		pg(post, "/account/password", Viewer, u.changePassword),

		// Admin > Connections.
		pg(get, "/connections", Viewer, u.connectionsPage),
		pg(get, "/connections/new", Admin, u.newConnection),
		pg(post, "/connections/new", Admin, u.createConnection),
		pg(get, "/oauth/mailchimp/callback", Admin, u.oauthCallback),
		pg(get, "/connections/{id}", Viewer, u.connectionPage),
		pg(post, "/connections/{id}", Admin, u.updateConnection),
		pg(post, "/connections/{id}/test", Admin, u.testConnection),
		pg(get, "/connections/{id}/delete", Admin, u.confirmDeleteConnection),
		pg(post, "/connections/{id}/delete", Admin, u.deleteConnection),

		// Admin > Users, Audit log.
		pg(get, "/users", Admin, u.usersPage),
		pg(post, "/users", Admin, u.createUser),
		pg(post, "/users/{id}", Admin, u.updateUser),
		pg(get, "/audit", Admin, u.auditPage),
	}
}

// pg is one line of the page table.
func pg(method, pattern string, access Access, h func(http.ResponseWriter, *http.Request, *Page) error) Route {
	return Route{Method: method, Pattern: pattern, Access: access, Handle: h}
}

// upload marks a page that takes a multipart upload.
func upload(rt Route) Route {
	rt.Upload = true
	return rt
}
