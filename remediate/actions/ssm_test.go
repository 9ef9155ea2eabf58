package actions

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testpeer"
	"github.com/remediator/remediator/internal/testtls"
)

const certParameter = "/cabal/control_domain_ssl_cert"

// wantFactsAsDeclared checks that facts holds exactly the facts a declares, each with the
// Go type of its declared type, as conditions and templates expect them.
func wantFactsAsDeclared(t *testing.T, a Action, facts Facts) {
	t.Helper()
	goTypes := map[Type]reflect.Type{
		String: reflect.TypeFor[string](), Int: reflect.TypeFor[int64](), Bool: reflect.TypeFor[bool](),
		Duration: reflect.TypeFor[time.Duration](), Time: reflect.TypeFor[time.Time](),
		StringList: reflect.TypeFor[[]string](), Object: reflect.TypeFor[map[string]any](),
		ObjectList: reflect.TypeFor[[]map[string]any](),
	}
	spec := a.Spec()
	for _, f := range spec.Facts {
		if got := reflect.TypeOf(facts[f.Name]); got != goTypes[f.Type] {
			t.Errorf("%s fact %s has Go type %v, want %v", spec.Name, f.Name, got, goTypes[f.Type])
		}
	}
	if len(facts) != len(spec.Facts) {
		t.Errorf("%s returned %d facts, want the %d declared: %v", spec.Name, len(facts), len(spec.Facts), facts)
	}
}

func TestParseStoredCertificateNeverQuotesTheValue(t *testing.T) {
	ca := testtls.NewCA(t)
	cert := ca.Intermediate(t).Leaf(t, testtls.LeafOptions{DNSNames: []string{"*.example.test"}})
	tests := []struct {
		name  string
		value string
		want  string // the error; empty for the leaf
	}{
		{"a leaf followed by its chain gives the leaf", cert.PEM(), ""},
		{"a chain after blank lines and comments still gives the leaf", "\n# fullchain\n" + cert.PEM(), ""},
		{"a private key is refused", cert.KeyPEM(),
			"the value holds a private key; name the certificate's parameter instead"},
		{"a certificate bundled with its key is refused", cert.PEM() + cert.KeyPEM(),
			"the value holds a private key; name the certificate's parameter instead"},
		{"a value that is not PEM is refused", "hunter2-not-a-certificate",
			"the value is not PEM: want a certificate, leaf first"},
		{"PEM without a certificate is refused", "-----BEGIN OPAQUE-----\naHVudGVyMg==\n-----END OPAQUE-----\n",
			"the value holds 1 PEM blocks and no certificate"},
		{"a certificate block holding garbage is refused",
			"-----BEGIN CERTIFICATE-----\naHVudGVyMg==\n-----END CERTIFICATE-----\n",
			"parsing its first certificate: x509: malformed certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := parseStoredCertificate([]byte(tt.value))
			if tt.want == "" {
				if err != nil || !leaf.Equal(cert.Leaf) {
					t.Fatalf("got %v, %v; want the leaf", leaf, err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			for _, secret := range []string{"hunter2", "aHVudGVyMg", "PRIVATE KEY-----"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes the value: %v", err)
				}
			}
		})
	}
}

func TestSSMCertificateRequestNamesOnlyTheParameter(t *testing.T) {
	req, err := NewSSMCertificate(NewAWS(AWSOptions{})).Request(Params{"name": certParameter}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(req)
	want := `{"service":"ssm","operation":"GetParameter","input":{"Name":"/cabal/control_domain_ssl_cert",` +
		`"WithDecryption":true}}`
	if string(got) != want {
		t.Errorf("request %s\nwant    %s", got, want)
	}
	if _, err := NewSSMCertificate(nil).Request(Params{"name": " "}, testEnv()); reasonOf(err) != ReasonInvalid {
		t.Errorf("an empty name gave %v, want invalid", err)
	}
}

func TestSSMCertificateAgainstMoto(t *testing.T) {
	a, calls, cfg := motoAWS(t)
	ca := testtls.NewCA(t)
	notAfter := time.Now().Add(60 * 24 * time.Hour).Truncate(time.Second)
	cert := ca.Intermediate(t).Leaf(t, testtls.LeafOptions{
		DNSNames: []string{"*.example.test", "example.test"}, NotAfter: notAfter,
	})
	testpeer.SeedParameter(t, cfg, certParameter, cert.PEM())
	testpeer.SeedParameter(t, cfg, "/cabal/control_domain_ssl_key", cert.KeyPEM())
	action := NewSSMCertificate(a)

	t.Run("reports the stored leaf and nothing of the value", func(t *testing.T) {
		facts := mustRun(t, action, Params{"name": certParameter})
		sum := sha256.Sum256(cert.Leaf.Raw)
		if facts["sha256"] != hex.EncodeToString(sum[:]) || !facts["not_after"].(time.Time).Equal(notAfter) ||
			facts["serial"] != cert.Leaf.SerialNumber.Text(16) || facts["days_left"] != int64(59) ||
			!slices.Equal(facts["dns_names"].([]string), cert.Leaf.DNSNames) {
			t.Errorf("facts %v do not describe the stored leaf", facts)
		}
		wantFactsAsDeclared(t, action, facts)
		raw, _ := json.Marshal(facts)
		if strings.Contains(string(raw), "BEGIN") || strings.Contains(string(raw), "MII") {
			t.Errorf("facts carry PEM or DER: %s", raw)
		}
		if got := calls.Calls(); !slices.Equal(got, []string{"SSM/GetParameter"}) {
			t.Errorf("calls %v, want one GetParameter", got)
		}
	})

	t.Run("a parameter holding the key fails without quoting it", func(t *testing.T) {
		_, err := runAction(t, action, Params{"name": "/cabal/control_domain_ssl_key"})
		if reasonOf(err) != ReasonInvalid || !strings.Contains(err.Error(), "holds a private key") {
			t.Fatalf("err = %v, want invalid: holds a private key", err)
		}
		if key := cert.KeyPEM(); strings.Contains(err.Error(), key[40:80]) {
			t.Errorf("the error quotes the key: %v", err)
		}
	})

	t.Run("a missing parameter is not found", func(t *testing.T) {
		_, err := runAction(t, action, Params{"name": "/cabal/missing"})
		if reasonOf(err) != ReasonNotFound || !strings.Contains(err.Error(), "reading parameter /cabal/missing") {
			t.Fatalf("err = %v, want not_found", err)
		}
	})
}

// FuzzParseStoredCertificate feeds parameter values: whatever they hold, an error never
// quotes them.
func FuzzParseStoredCertificate(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\naHVudGVyMg==\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\naHVudGVyMg==\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN X-----\n\n-----END X-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		value := append([]byte("hunter2\n"), data...)
		if _, err := parseStoredCertificate(value); err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes the value: %v", err)
		}
	})
}
