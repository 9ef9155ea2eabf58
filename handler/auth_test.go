package handler

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/remediator/remediator/config"
)

func TestAuthenticatorAcceptsOnlyConfiguredCredentials(t *testing.T) {
	basic := &config.BasicAuth{Username: "alertmanager", PasswordFile: writeFile(t, "pw", "hunter2\n")}
	both := config.Auth{BearerTokenFile: writeFile(t, "tok", testToken), BasicAuth: basic}
	verifiedTLS := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	cases := []struct {
		name  string
		auth  config.Auth
		tls   *config.TLS
		req   func() *http.Request
		allow bool
	}{
		{"accepts the bearer token", both, nil, bearer(testToken), true},
		{"accepts the bearer scheme in any case", both, nil, header("bearer " + testToken), true},
		{"refuses a token with a suffix", both, nil, bearer(testToken + "x"), false},
		{"refuses a prefix of the token", both, nil, bearer(testToken[:5]), false},
		{"accepts basic auth with the right password", both, nil, basicAuth("alertmanager", "hunter2"), true},
		{"refuses basic auth with the wrong password", both, nil, basicAuth("alertmanager", "hunter3"), false},
		{"refuses basic auth with the wrong user", both, nil, basicAuth("prometheus", "hunter2"), false},
		{"refuses no credentials", both, nil, header(""), false},
		{"accepts anyone when told to", config.Auth{AllowUnauthenticated: true}, nil, header(""), true},
		{"accepts a verified client certificate", config.Auth{},
			&config.TLS{ClientAuth: config.ClientAuthRequireAndVerify}, withTLS(verifiedTLS), true},
		{"refuses TLS without a verified client certificate", config.Auth{},
			&config.TLS{ClientAuth: config.ClientAuthVerifyIfGiven}, withTLS(&tls.ConnectionState{}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAuthenticator(tc.auth, tc.tls, func(p string) string { return p })
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Allow(tc.req()); got != tc.allow {
				t.Errorf("Allow = %v, want %v", got, tc.allow)
			}
		})
	}
}

func bearer(tok string) func() *http.Request { return header("Bearer " + tok) }

func header(h string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("POST", "/webhook", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		return r
	}
}

func basicAuth(user, pass string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("POST", "/webhook", nil)
		r.SetBasicAuth(user, pass)
		return r
	}
}

func withTLS(cs *tls.ConnectionState) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("POST", "/webhook", nil)
		r.TLS = cs
		return r
	}
}

func TestNewAuthenticatorNamesTheFileNotTheSecret(t *testing.T) {
	cases := []struct {
		name string
		auth config.Auth
		want string
	}{
		{"names a missing token file", config.Auth{BearerTokenFile: "/nonexistent/token"},
			"reading webhook.auth.bearer_token_file: open /nonexistent/token: no such file or directory"},
		{"names an empty token file", config.Auth{BearerTokenFile: writeFile(t, "empty", "\n")},
			"reading webhook.auth.bearer_token_file: "},
		{"refuses a configuration without any credential", config.Auth{},
			"no credential configured: set webhook.auth.bearer_token_file, basic_auth or client certificates, " +
				"or allow_unauthenticated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAuthenticator(tc.auth, nil, func(p string) string { return p })
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
}
