package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remediator/remediator/remediate/actions"
)

// testRegistry holds the actions that need no AWS, enough for the loader's rules.
func testRegistry() actions.Registry {
	return actions.Builtin(actions.Deps{})
}

// TestBadPolicies loads each file of testdata/bad and expects exactly the messages in
// the .err file beside it.
func TestBadPolicies(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(file), data, testRegistry())
			if err == nil {
				t.Fatal("loaded without error")
			}
			if got := err.Error(); got != strings.TrimSpace(string(want)) {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestShippedPoliciesLoad(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped policies: %v", err)
	}
	set, err := Load(files, ".", testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Policies) == 0 {
		t.Fatal("no policy loaded")
	}
}

func TestLoadRefusesDuplicateNamesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	doc := "policies:\n  - name: same\n    match: ['alertname=\"A\"']\n    steps:\n" +
		"      - id: live\n        action: tls.probe\n        with: {address: \"a:1\"}\n"
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Load([]string{"*.yaml"}, dir, testRegistry())
	want := filepath.Join(dir, "b.yaml") + `:2: name: policy "same" is also defined at ` + filepath.Join(dir, "a.yaml") + ":2"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

func TestLoadRefusesAGlobThatMatchesNothing(t *testing.T) {
	_, err := Load([]string{"missing/*.yaml"}, t.TempDir(), testRegistry())
	if err == nil || !strings.Contains(err.Error(), "matches no file") {
		t.Fatalf("error %v", err)
	}
}

func TestMatchUsesAlertmanagerMatchers(t *testing.T) {
	doc := "policies:\n  - name: le\n    match: ['alertname=~\"BlackboxTLSCertExpiringSoon(Warning|Critical)\"', " +
		"'instance=~\".+:(465|587|143)\"']\n    steps:\n" +
		"      - id: live\n        action: tls.probe\n        with: {address: \"a:1\"}\n"
	ps, err := Parse("m.yaml", []byte(doc), testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	set := &Set{Policies: ps}
	cases := []struct {
		name   string
		labels map[string]string
		status string
		want   int
	}{
		{"matches a firing warning for port 465",
			map[string]string{"alertname": "BlackboxTLSCertExpiringSoonWarning", "instance": "smtp-out.x.test:465"},
			"firing", 1},
		{"does not match port 993",
			map[string]string{"alertname": "BlackboxTLSCertExpiringSoonWarning", "instance": "imap.x.test:993"},
			"firing", 0},
		{"does not act on a resolved alert by default",
			map[string]string{"alertname": "BlackboxTLSCertExpiringSoonCritical", "instance": "imap.x.test:143"},
			"resolved", 0},
		{"anchors the regular expression like Alertmanager",
			map[string]string{"alertname": "XBlackboxTLSCertExpiringSoonWarning", "instance": "smtp.x.test:587"},
			"firing", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(set.Match(tc.labels, tc.status)); got != tc.want {
				t.Errorf("%d policies matched, want %d", got, tc.want)
			}
		})
	}
}

func FuzzParsePolicy(f *testing.F) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	shipped, _ := filepath.Glob("*.yaml")
	for _, file := range append(files, shipped...) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Parse("fuzz.yaml", data, reg)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for _, p := range ps {
			if p.Name == "" || len(p.Steps) == 0 || len(p.Matchers()) == 0 {
				t.Fatalf("accepted an incomplete policy: %+v", p)
			}
		}
	})
}
