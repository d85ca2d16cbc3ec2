package httpapi

import "net/http"

// ContentSecurityPolicy is the policy sent with every response. Pages load
// their script and stylesheet from /static ('self'), talk only to this
// server, and may not be framed. form-action is deliberately absent: the
// "Authenticate with Mailchimp" form is answered with a redirect to
// Mailchimp's login page, which browsers check against form-action.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; " +
	"base-uri 'none'; frame-ancestors 'none'"

// SecurityHeaders sets the browser security headers on every response of
// h: the content security policy, no framing (frame-ancestors and the older
// X-Frame-Options), no MIME sniffing, no referrer beyond this origin, and no
// access to powerful browser features. The headers are set before h runs,
// so they hold for errors and redirects too; h may still override them.
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.ServeHTTP(w, r)
	})
}
