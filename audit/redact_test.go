package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n" +
	"-----END PRIVATE KEY-----\n"

func TestRedact(t *testing.T) {
	type importInput struct {
		CertificateArn string `json:"CertificateArn"`
		Certificate    []byte `json:"Certificate"`
		Chain          []byte `json:"CertificateChain"`
	}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{
			name: "hides the value of every key naming a secret, whatever its case and separators",
			in: map[string]any{
				"token": "t", "Secret": "s", "db_password": "p", "passwd": "p",
				"Authorization": "Bearer x", "credentials": map[string]any{"user": "u"},
				"Credential": "c", "private_key": "k", "key_pem": "k", "SessionToken": "t",
				"AccessKeyId": "AKIA", "SecretAccessKey": "s", "x-api-token": "t",
			},
			want: `{"AccessKeyId":"<redacted>","Authorization":"<redacted>",` +
				`"Credential":"<redacted>","Secret":"<redacted>","SecretAccessKey":"<redacted>",` +
				`"SessionToken":"<redacted>","credentials":"<redacted>","db_password":"<redacted>",` +
				`"key_pem":"<redacted>","passwd":"<redacted>","private_key":"<redacted>",` +
				`"token":"<redacted>","x-api-token":"<redacted>"}`,
		},
		{
			name: "walks maps inside lists inside maps",
			in: map[string]any{"steps": []any{
				map[string]any{"id": "renew", "with": map[string]any{"api_token": "t", "zone": "z"}},
			}},
			want: `{"steps":[{"id":"renew","with":{"api_token":"<redacted>","zone":"z"}}]}`,
		},
		{
			name: "hides PEM text under any key and in lists",
			in:   map[string]any{"body": "key:\n" + testPEM, "chain": []any{testPEM, "plain"}},
			want: `{"body":"<redacted PEM>","chain":["<redacted PEM>","plain"]}`,
		},
		{
			name: "hides PEM bytes that encoding/json writes as base64",
			in: importInput{CertificateArn: testARN, Certificate: []byte(testPEM),
				Chain: []byte("not a pem")},
			want: `{"Certificate":"<redacted PEM>","CertificateArn":"` + testARN + `",` +
				`"CertificateChain":"bm90IGEgcGVt"}`,
		},
		{
			name: "keeps ordinary values and the exact text of numbers",
			in:   json.RawMessage(`{"count":12345678901234567890,"ratio":0.1,"none":null}`),
			want: `{"count":12345678901234567890,"none":null,"ratio":0.1}`,
		},
		{
			name: "hides secrets in a map of strings",
			in:   map[string]string{"remote": "192.0.2.1", "bearer_token": "t", "pem": testPEM},
			want: `{"bearer_token":"<redacted>","pem":"<redacted PEM>","remote":"192.0.2.1"}`,
		},
		{
			name: "hides a PEM string given on its own",
			in:   testPEM,
			want: `"<redacted PEM>"`,
		},
		{
			name: "returns nothing for a nil pointer",
			in:   (*importInput)(nil),
			want: `null`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Redact(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			enc := json.NewEncoder(&got)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(out); err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(got.String()) != tt.want {
				t.Fatalf("got  %s\nwant %s", got.String(), tt.want)
			}
		})
	}
}

func TestRedactRefusesWhatJSONCannotEncode(t *testing.T) {
	if _, err := Redact(map[string]any{"ch": make(chan int)}); err == nil {
		t.Fatal("got no error for a channel")
	}
}

func TestAppendRedactsRequestResultReasonAndError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	err := l.Append(Record{
		Decision: DecisionFailed,
		Request: map[string]any{
			"Authorization": "Bearer s3cr3t-t0ken", "PrivateKey": []byte(testPEM),
		},
		Result: map[string]any{"session": map[string]any{"SessionToken": "IQoJb3JpZ2luX2Vj"}},
		Reason: "could not parse " + testPEM,
		Error:  "importing " + testPEM,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(dir, CurrentFile))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"s3cr3t", "IQoJb3JpZ2luX2Vj", "BEGIN", "MIIEvQ", pemBase64Marker}
	for _, secret := range secrets {
		if strings.Contains(string(b), secret) {
			t.Errorf("the log holds %q: %s", secret, b)
		}
	}
	if !strings.Contains(string(b), `"Authorization":"<redacted>"`) {
		t.Errorf("the log does not say what was redacted: %s", b)
	}
}

func TestRedactLeavesItsArgumentUnchanged(t *testing.T) {
	in := map[string]any{
		"token": "t", "nested": []any{map[string]any{"password": "p", "pem": testPEM}},
	}
	if _, err := Redact(in); err != nil {
		t.Fatal(err)
	}
	nested := in["nested"].([]any)[0].(map[string]any)
	if in["token"] != "t" || nested["password"] != "p" || nested["pem"] != testPEM {
		t.Fatalf("Redact changed its argument: %v", in)
	}
}
