package policies

import (
	"strings"
	"testing"
)

func TestParseInstance(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want Instance
	}{
		{"splits host and port", "imap.example.test:993",
			Instance{Parsed: true, Host: "imap.example.test", Port: 993, Domain: "example.test"}},
		{"reads an HTTPS URL with its default port", "https://example.test/",
			Instance{Parsed: true, Scheme: "https", Host: "example.test", Port: 443, Path: "/", Domain: "example.test"}},
		{"keeps an explicit URL port and path", "https://Mail.Example.Test:8443/health",
			Instance{Parsed: true, Scheme: "https", Host: "mail.example.test", Port: 8443, Path: "/health",
				Domain: "example.test"}},
		{"unwraps a bracketed IPv6 address", "[2001:db8::1]:993",
			Instance{Parsed: true, Host: "2001:db8::1", Port: 993, IP: true}},
		{"takes a bare host", "smtp-out.example.test",
			Instance{Parsed: true, Host: "smtp-out.example.test", Domain: "example.test"}},
		{"takes a bare IPv4 address", "192.0.2.7:465", Instance{Parsed: true, Host: "192.0.2.7", Port: 465, IP: true}},
		{"takes a STARTTLS endpoint of an internal zone", "imap.cabal.internal:143",
			Instance{Parsed: true, Host: "imap.cabal.internal", Port: 143, Domain: "cabal.internal"}},
		{"refuses a port out of range", "imap.example.test:99999", Instance{}},
		{"refuses a name with spaces", "not a host", Instance{}},
		{"refuses an empty label", "", Instance{}},
		{"refuses user info in a URL", "https://user:pw@example.test/", Instance{}},
		{"refuses a host with odd characters", "exa$mple.test:443", Instance{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Raw = tc.raw
			if got := ParseInstance(tc.raw); got != tc.want {
				t.Errorf("ParseInstance(%q) =\n%+v, want\n%+v", tc.raw, got, tc.want)
			}
		})
	}
}

func TestInstanceAddressBracketsIPv6(t *testing.T) {
	if got := ParseInstance("[2001:db8::1]:993").Address(); got != "[2001:db8::1]:993" {
		t.Errorf("address %q", got)
	}
	if got := ParseInstance("https://example.test/").Address(); got != "example.test:443" {
		t.Errorf("address %q", got)
	}
}

func FuzzParseInstance(f *testing.F) {
	for _, s := range []string{"imap.example.test:993", "https://example.test/", "[2001:db8::1]:993",
		"host", "http://[::1]:80/x", "a:b:c", "https://:443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		in := ParseInstance(raw)
		if in.Raw != raw {
			t.Fatalf("raw not kept")
		}
		if !in.Parsed {
			if in.Host != "" || in.Port != 0 {
				t.Fatalf("unparsed instance carries parts: %+v", in)
			}
			return
		}
		if in.Host == "" || in.Port < 0 || in.Port > 65535 || strings.ContainsAny(in.Host, " []") {
			t.Fatalf("parsed into nonsense: %+v", in)
		}
		if again := ParseInstance(in.Address()); in.Port != 0 && in.Scheme == "" && again.Host != in.Host {
			t.Fatalf("address %q does not parse back to host %q", in.Address(), in.Host)
		}
	})
}
