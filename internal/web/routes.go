package web

import "net/http"

// routeTable is THE page table: every page the UI serves, with the least
// role it needs. The API checks the caller again on every call a page makes;
// this table decides who sees the page at all. Connections are listed for
// every role (names only for non-admins); changing them is for admins.
func (u *UI) routeTable() []Route {
	const get, post = http.MethodGet, http.MethodPost
	return []Route{
		{get, "/login", Public, u.loginPage},
		{post, "/login", Public, u.login},
		{post, "/logout", Viewer, u.logout},
		{get, "/{$}", Viewer, u.home},

		// Data > Profiles.
		{get, "/profiles", Viewer, u.profilesPage},
		{post, "/profiles/import", Contributor, u.importProfiles},

		// Data > Segments.
		{get, "/segments", Viewer, u.segmentsPage},
		{get, "/segments/new", Contributor, u.newSegment},
		{post, "/segments/new", Contributor, u.saveSegment},
		{post, "/segments/count", Contributor, u.countSegment},
		{get, "/segments/{id}", Viewer, u.segmentPage},
		{get, "/segments/{id}/edit", Contributor, u.editSegment},
		{post, "/segments/{id}/edit", Contributor, u.saveSegment},
		{post, "/segments/{id}/delete", Contributor, u.deleteSegment},

		// Data > Exports and their runs.
		{get, "/exports", Viewer, u.exportsPage},
		{get, "/exports/new", Contributor, u.newExport},
		{post, "/exports/new", Contributor, u.saveExport},
		{get, "/exports/{id}", Viewer, u.exportPage},
		{get, "/exports/{id}/edit", Contributor, u.editExport},
		{post, "/exports/{id}/edit", Contributor, u.saveExport},
		{post, "/exports/{id}/delete", Contributor, u.deleteExport},
		{post, "/exports/{id}/run", Contributor, u.runExport},
		{get, "/runs/{id}", Viewer, u.runPage},
		{get, "/runs/{id}/rejections.csv", Viewer, u.rejectionsCSV},
		{post, "/runs/{id}/cancel", Contributor, u.cancelRun},

		// System.
		{get, "/status", Viewer, u.statusPage},
		{get, "/tokens", Viewer, u.tokensPage},
		{post, "/tokens", Viewer, u.createToken},
		{post, "/tokens/{id}/revoke", Viewer, u.revokeToken},
		{post, "/account/password", Viewer, u.changePassword},

		// Admin > Connections.
		{get, "/connections", Viewer, u.connectionsPage},
		{get, "/connections/new", Admin, u.newConnection},
		{post, "/connections/new", Admin, u.createConnection},
		{get, "/oauth/mailchimp/callback", Admin, u.oauthCallback},
		{get, "/connections/{id}", Viewer, u.connectionPage},
		{post, "/connections/{id}", Admin, u.updateConnection},
		{post, "/connections/{id}/test", Admin, u.testConnection},
		{get, "/connections/{id}/delete", Admin, u.confirmDeleteConnection},
		{post, "/connections/{id}/delete", Admin, u.deleteConnection},

		// Admin > Users, Audit log.
		{get, "/users", Admin, u.usersPage},
		{post, "/users", Admin, u.createUser},
		{post, "/users/{id}", Admin, u.updateUser},
		{get, "/audit", Admin, u.auditPage},
	}
}
