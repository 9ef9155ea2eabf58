package handler

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/remediator/remediator/config"
)

// Authenticator checks the credentials of a request against those configured. It holds
// only digests of the secrets, never the secrets themselves.
type Authenticator struct {
	bearer      *[sha256.Size]byte
	basicUser   *[sha256.Size]byte
	basicPass   *[sha256.Size]byte
	clientCerts bool // a verified client certificate authenticates on its own
	anyone      bool
	challenges  []string
}

// NewAuthenticator reads the secret files named in auth. Errors name the file, never its
// content.
func NewAuthenticator(auth config.Auth, tls *config.TLS, resolve func(string) string) (*Authenticator, error) {
	a := &Authenticator{anyone: auth.AllowUnauthenticated}
	if auth.BearerTokenFile != "" {
		d, err := readSecretDigest(resolve(auth.BearerTokenFile))
		if err != nil {
			return nil, fmt.Errorf("reading webhook.auth.bearer_token_file: %w", err)
		}
		a.bearer = d
		a.challenges = append(a.challenges, `Bearer realm="remediator"`)
	}
	if ba := auth.BasicAuth; ba != nil {
		d, err := readSecretDigest(resolve(ba.PasswordFile))
		if err != nil {
			return nil, fmt.Errorf("reading webhook.auth.basic_auth.password_file: %w", err)
		}
		u := sha256.Sum256([]byte(ba.Username))
		a.basicUser, a.basicPass = &u, d
		a.challenges = append(a.challenges, `Basic realm="remediator", charset="UTF-8"`)
	}
	if tls != nil && tls.ClientAuth != config.ClientAuthNone && tls.ClientAuth != "" {
		a.clientCerts = true
	}
	if a.bearer == nil && a.basicUser == nil && !a.clientCerts && !a.anyone {
		return nil, errors.New("no credential configured: set webhook.auth.bearer_token_file, " +
			"basic_auth or client certificates, or allow_unauthenticated")
	}
	return a, nil
}

func readSecretDigest(path string) (*[sha256.Size]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		// the error names the path only
		return nil, err
	}
	secret := strings.TrimSpace(string(raw))
	if secret == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	d := sha256.Sum256([]byte(secret))
	return &d, nil
}

// Allow reports whether r carries a valid credential.
func (a *Authenticator) Allow(r *http.Request) bool {
	if a.anyone {
		return true
	}
	if a.clientCerts && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true
	}
	h := r.Header.Get("Authorization")
	if a.bearer != nil {
		if token, ok := cutScheme(h, "Bearer"); ok && equalDigest(a.bearer, token) {
			return true
		}
	}
	if a.basicUser != nil {
		user, pass, ok := r.BasicAuth()
		if ok {
			// evaluate both, so that timing tells nothing about which one failed
			userOK := equalDigest(a.basicUser, user)
			passOK := equalDigest(a.basicPass, pass)
			return userOK && passOK
		}
	}
	return false
}

// Challenge sets WWW-Authenticate for a 401 answer.
func (a *Authenticator) Challenge(w http.ResponseWriter) {
	for _, c := range a.challenges {
		w.Header().Add("WWW-Authenticate", c)
	}
	if len(a.challenges) == 0 {
		w.Header().Set("WWW-Authenticate", `Mutual realm="remediator"`)
	}
}

func cutScheme(header, scheme string) (string, bool) {
	if len(header) <= len(scheme)+1 || !strings.EqualFold(header[:len(scheme)], scheme) ||
		header[len(scheme)] != ' ' {
		return "", false
	}
	return strings.TrimSpace(header[len(scheme)+1:]), true
}

// equalDigest compares in constant time; hashing first hides the secret's length too.
func equalDigest(want *[sha256.Size]byte, got string) bool {
	d := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], d[:]) == 1
}
