package api

import (
	"embed"
	"net/http"
)

// The page is plain HTML, CSS and JavaScript drawing SVG, embedded so the
// binary serves it with no build step and nothing fetched from elsewhere.
//
//go:embed web
var webFiles embed.FS

// contentSecurity lets the page load only its own files and talk only to
// this server: it shows data, never code, from the API.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page serves the fleet's live page. It only reads the API (GET), so it
// needs no token and can change nothing.
func page(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	http.ServeFileFS(w, r, webFiles, "web/index.html")
}

// assets serves the page's scripts and styles: the embedded directory
// "web" is also their URL prefix.
var assets = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	http.FileServerFS(webFiles).ServeHTTP(w, r)
})

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurity)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The binary's files change with the binary, which has no modification
	// time to validate against: revalidate every load.
	h.Set("Cache-Control", "no-cache")
}
