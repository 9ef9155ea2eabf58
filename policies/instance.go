package policies

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Instance is the instance label of an alert, parsed once. Shapes understood:
// "host:port", "[2001:db8::1]:993", "https://host/path", and a bare host. Anything else
// keeps only Raw, and Parsed is false: a policy can refuse it with
// `when: instance.parsed`.
type Instance struct {
	Raw    string
	Parsed bool
	// Scheme is the URL scheme, empty for host:port and bare hosts.
	Scheme string
	// Host is the host name or IP address, without brackets, lower-cased.
	Host string
	// Port is the port, from the label or the scheme's default; 0 when unknown.
	Port int
	// Path is the URL path, empty for host:port.
	Path string
	// Domain is the host's parent domain ("example.test" for "imap.example.test"); a
	// host of two labels is its own domain. Empty for IP addresses.
	Domain string
	// IP is true when Host is an IP address.
	IP bool
}

// Address returns "host:port", with brackets around IPv6 hosts; just the host when the
// port is unknown.
func (i Instance) Address() string {
	if i.Port == 0 {
		return i.Host
	}
	return net.JoinHostPort(i.Host, strconv.Itoa(i.Port))
}

var schemePorts = map[string]int{"https": 443, "http": 80, "smtps": 465, "imaps": 993, "smtp": 25, "imap": 143}

// ParseInstance parses an instance label.
func ParseInstance(raw string) Instance {
	in := Instance{Raw: raw}
	s := strings.TrimSpace(raw)
	if s == "" || len(s) > 1024 || strings.ContainsAny(s, " \t\r\n") {
		return in
	}
	var ok bool
	if strings.Contains(s, "://") {
		ok = in.parseURL(s)
	} else {
		ok = in.parseHostPort(s)
	}
	if !ok || !validHost(in.Host) {
		return Instance{Raw: raw}
	}
	in.Parsed = true
	in.IP = net.ParseIP(in.Host) != nil
	if !in.IP {
		in.Domain = parentDomain(in.Host)
	}
	return in
}

func (in *Instance) parseURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	in.Scheme = strings.ToLower(u.Scheme)
	in.Host = strings.ToLower(u.Hostname())
	in.Path = u.Path
	if p := u.Port(); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return false
		}
		in.Port = port
		return true
	}
	in.Port = schemePorts[in.Scheme]
	return true
}

func (in *Instance) parseHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// a bare host, or a bare IPv6 address
		if strings.ContainsAny(s, "[]/") {
			return false
		}
		in.Host = strings.ToLower(s)
		return true
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return false
	}
	in.Host, in.Port = strings.ToLower(host), n
	return true
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '*') {
				return false
			}
		}
	}
	return true
}

func parentDomain(host string) string {
	host = strings.TrimSuffix(host, ".")
	labels := strings.Split(host, ".")
	if len(labels) <= 2 {
		return host
	}
	return strings.Join(labels[1:], ".")
}

// celValue is the instance as CEL and templates see it.
func (i Instance) celValue() map[string]any {
	return map[string]any{
		"raw": i.Raw, "parsed": i.Parsed, "scheme": i.Scheme, "host": i.Host, "port": int64(i.Port),
		"path": i.Path, "domain": i.Domain, "ip": i.IP, "address": i.Address(),
	}
}
