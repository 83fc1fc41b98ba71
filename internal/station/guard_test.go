package station

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"pilebridge/internal/config"
)

// The bearer scheme is case-insensitive (RFC 9110); the token is not.
func TestBearerSchemeAnyCase(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	g := newGuard(&config.Config{Listen: "127.0.0.1:0"}, tok, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	for auth, want := range map[string]int{
		"Bearer " + tok:            http.StatusNoContent,
		"bearer " + tok:            http.StatusNoContent,
		"BEARER  " + tok:           http.StatusNoContent,
		"Bearer " + tok[:31] + "F": http.StatusUnauthorized,
		"Basic " + tok:             http.StatusUnauthorized,
		tok:                        http.StatusUnauthorized,
	} {
		req := httptest.NewRequest(http.MethodPost, "/outbox/retry?parked=1", nil)
		req.Host = "127.0.0.1"
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		assert.Equal(t, want, w.Code, "%q", auth)
	}
}
