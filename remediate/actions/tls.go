package actions

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// STARTTLS modes the tls actions take. Auto is resolved from the port before probing.
const (
	starttlsAuto = "auto"
	starttlsNone = "none"
	starttlsSMTP = "smtp"
	starttlsIMAP = "imap"
)

const defaultTLSProbeTimeout = 10 * time.Second

// NewTLSProbe returns the tls.probe action, which reports the certificate a TLS endpoint
// presents, reached directly or after an SMTP or IMAP STARTTLS exchange.
func NewTLSProbe() Action { return tlsProbe{} }

type tlsProbe struct{}

// Spec declares tls.probe.
func (tlsProbe) Spec() Spec {
	return Spec{
		Name: "tls.probe",
		Doc: "Connects to a TLS endpoint, directly or after an SMTP or IMAP STARTTLS " +
			"exchange, and reports the certificate the server presents: its validity, " +
			"names, issuer, serial and fingerprint, and whether its chain verifies for the " +
			"server name against the system roots or ca_file. A certificate that does not " +
			"verify, because it expired, is self-signed or names another host, still yields " +
			"its facts, with verified false and the reason in verify_error. The probe sends " +
			"no credentials and changes nothing; it fails only when no certificate could be " +
			"retrieved.",
		Params: tlsTargetParams(),
		Facts:  tlsCertificateFacts(),
	}
}

// tlsTargetParams declares the parameters that say where and how to reach a TLS endpoint.
func tlsTargetParams() []Param {
	return []Param{
		{Name: "address", Type: String, Required: true,
			Doc: "The endpoint as host:port; an IPv6 host goes in brackets, as in " +
				"[2001:db8::1]:993."},
		{Name: "server_name", Type: String,
			Doc: "The name sent in SNI and checked against the certificate; defaults to the " +
				"host of address, or, for an IP address, to no SNI and a check of that IP."},
		{Name: "starttls", Type: String, Default: starttlsAuto,
			Doc: "How TLS starts: none for implicit TLS, smtp or imap to upgrade a plaintext " +
				"session with STARTTLS, or auto (the default), which picks smtp for ports " +
				"25 and 587, imap for 143 and none for any other port."},
		{Name: "timeout", Type: Duration, Default: defaultTLSProbeTimeout,
			Doc: "The bound on the whole probe, from dialing through the STARTTLS exchange " +
				"to the end of the handshake; defaults to 10s."},
		{Name: "ca_file", Type: String,
			Doc: "A PEM file of root certificates to verify against instead of the system " +
				"roots."},
	}
}

// tlsCertificateFacts declares the facts reported about a presented certificate.
func tlsCertificateFacts() []Fact {
	return []Fact{
		{Name: "not_after", Type: Time, Doc: "The end of the leaf certificate's validity."},
		{Name: "not_before", Type: Time, Doc: "The start of the leaf certificate's validity."},
		{Name: "days_left", Type: Int,
			Doc: "Whole days from now until not_after, negative once it has passed."},
		{Name: "serial", Type: String, Doc: "The leaf's serial number in lowercase hex."},
		{Name: "issuer", Type: String,
			Doc: "The issuer's common name, or its full distinguished name when it has none."},
		{Name: "subject", Type: String,
			Doc: "The subject's common name, or its full distinguished name when it has none."},
		{Name: "dns_names", Type: StringList, Doc: "The DNS names the leaf is valid for."},
		{Name: "sha256", Type: String,
			Doc: "The SHA-256 fingerprint of the leaf's DER encoding in lowercase hex."},
		{Name: "verified", Type: Bool,
			Doc: "Whether the chain verifies for the server name at the time of the probe."},
		{Name: "verify_error", Type: String,
			Doc: "Why the chain does not verify; empty when verified is true."},
		{Name: "protocol", Type: String,
			Doc: "How TLS was reached: tls for implicit TLS, smtp or imap after STARTTLS."},
	}
}

// Request describes the probe p asks for, with the STARTTLS mode already resolved.
func (tlsProbe) Request(p Params, _ Env) (Request, error) {
	target, err := parseTLSTarget(p)
	if err != nil {
		return Request{}, err
	}
	return Request{Service: "tls", Operation: "Probe", Input: target.input()}, nil
}

// Run probes the endpoint and reports its certificate.
func (tlsProbe) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	target, err := parseTLSTarget(p)
	if err != nil {
		return nil, err
	}

	res, err := probeTLS(ctx, target)
	if err != nil {
		return nil, err
	}

	return res.facts(target.protocol(), time.Now()), nil
}

// tlsTarget is where and how to probe, taken from a step's parameters.
type tlsTarget struct {
	address    string // host:port as the step gave it
	serverName string // sent in SNI; empty for an IP address without server_name
	verifyName string // the name or IP address the certificate must be valid for
	starttls   string // none, smtp or imap; never auto
	timeout    time.Duration
	caFile     string
}

func parseTLSTarget(p Params) (tlsTarget, error) {
	address := p.String("address")
	host, port, err := splitTLSAddress(address)
	if err != nil {
		return tlsTarget{}, err
	}

	mode, err := resolveSTARTTLS(p.String("starttls"), port)
	if err != nil {
		return tlsTarget{}, err
	}

	timeout := p.Duration("timeout")
	if timeout < 0 {
		return tlsTarget{}, Invalid("timeout %s: must be positive", timeout)
	}
	if timeout == 0 {
		timeout = defaultTLSProbeTimeout
	}

	target := tlsTarget{address: address, starttls: mode, timeout: timeout}
	target.caFile = p.String("ca_file")
	target.serverName, target.verifyName = tlsNames(host, p.String("server_name"))
	return target, nil
}

// splitTLSAddress splits host:port and checks that the port is a number.
func splitTLSAddress(address string) (string, int, error) {
	if address == "" {
		return "", 0, Invalid("address: required")
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, Invalid("parsing address: %w", err)
	}
	if host == "" {
		return "", 0, Invalid("parsing address %q: missing host", address)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, Invalid("parsing address %q: port must be a number from 1 to 65535", address)
	}
	return host, port, nil
}

// resolveSTARTTLS checks a starttls parameter and resolves auto from the port.
func resolveSTARTTLS(mode string, port int) (string, error) {
	switch mode = strings.ToLower(mode); mode {
	case "", starttlsAuto:
		return autoSTARTTLS(port), nil
	case starttlsNone, starttlsSMTP, starttlsIMAP:
		return mode, nil
	}
	return "", Invalid("starttls %q: must be one of auto, none, smtp, imap", mode)
}

// autoSTARTTLS returns the STARTTLS mode the well-known plaintext mail ports use.
func autoSTARTTLS(port int) string {
	switch port {
	case 25, 587:
		return starttlsSMTP
	case 143:
		return starttlsIMAP
	}
	return starttlsNone
}

// tlsNames returns the name to send in SNI and the name to verify the certificate for.
// An IP address is never sent in SNI; its certificate is checked for the address itself.
func tlsNames(host, serverName string) (sni, verify string) {
	if serverName != "" {
		return serverName, serverName
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return "", ip.WithZone("").String()
	}
	return host, host
}

func (t tlsTarget) protocol() string {
	if t.starttls == starttlsNone {
		return "tls"
	}
	return t.starttls
}

func (t tlsTarget) input() map[string]any {
	in := map[string]any{
		"address":     t.address,
		"server_name": t.serverName,
		"starttls":    t.starttls,
		"timeout":     t.timeout.String(),
	}
	if t.caFile != "" {
		in["ca_file"] = t.caFile
	}
	return in
}

// tlsProbeResult is what one probe saw.
type tlsProbeResult struct {
	chain     []*x509.Certificate // as presented, leaf first; never empty
	verifyErr error               // why the chain does not verify; nil when it does
}

// probeTLS connects to target within its timeout, retrieves the certificate chain the
// server presents whether or not it is valid, and verifies it. Its errors are
// *StepError: invalid for a bad ca_file, timeout, unavailable, or failed when ctx was
// cancelled.
func probeTLS(ctx context.Context, target tlsTarget) (tlsProbeResult, error) {
	roots, err := loadTLSRoots(target.caFile)
	if err != nil {
		return tlsProbeResult{}, &StepError{Reason: ReasonInvalid,
			Err: fmt.Errorf("probing %s: %w", target.address, err)}
	}

	ctx, cancel := context.WithTimeout(ctx, target.timeout)
	defer cancel()

	chain, err := fetchTLSChain(ctx, target)
	if err != nil {
		return tlsProbeResult{}, tlsProbeError(ctx, target.address, err)
	}

	verifyErr := verifyTLSChain(chain, roots, target.verifyName, time.Now())
	return tlsProbeResult{chain: chain, verifyErr: verifyErr}, nil
}

// loadTLSRoots reads a PEM file of roots; no file means the system roots, as nil does
// for x509.
func loadTLSRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("reading ca_file %s: no PEM certificate found", path)
	}
	return pool, nil
}

// fetchTLSChain dials, runs the STARTTLS exchange if any and the handshake, and returns
// the chain the server presented without judging it.
func fetchTLSChain(ctx context.Context, target tlsTarget) ([]*x509.Certificate, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", target.address)
	if err != nil {
		return nil, fmt.Errorf("dialing: %w", err)
	}
	defer conn.Close()

	stop := bindConnToContext(ctx, conn)
	defer stop()

	if err := negotiateSTARTTLS(conn, target.starttls); err != nil {
		return nil, err
	}

	tc := tls.Client(conn, &tls.Config{
		ServerName: target.serverName,
		// The chain is verified by verifyTLSChain, so that a certificate that fails
		// verification still yields its facts. Nothing confidential crosses this
		// connection, so old protocol versions are accepted to reach old servers.
		InsecureSkipVerify: true,             //nolint:gosec // verified below
		MinVersion:         tls.VersionTLS10, //nolint:gosec // see above
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("handshaking: %w", err)
	}
	defer tc.Close()

	chain := tc.ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, errors.New("handshaking: server presented no certificate")
	}
	sayGoodbye(tc, target.starttls)

	return chain, nil
}

// sayGoodbye ends a mail session the way its protocol expects, so that the server does
// not record a dropped connection. It does not wait for the reply.
func sayGoodbye(w io.Writer, mode string) {
	switch mode {
	case starttlsSMTP:
		_, _ = io.WriteString(w, "QUIT\r\n")
	case starttlsIMAP:
		_, _ = io.WriteString(w, "a3 LOGOUT\r\n")
	}
}

// bindConnToContext makes every read and write on conn fail once ctx is done, so that
// the plaintext exchange obeys the same deadline and cancellation as the handshake.
func bindConnToContext(ctx context.Context, conn net.Conn) (stop func() bool) {
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// tlsProbeError classifies a failed probe. ctx is the probe's own context, whose
// deadline is the probe's timeout.
func tlsProbeError(ctx context.Context, address string, err error) error {
	reason := ReasonUnavailable
	var netErr net.Error
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		reason = ReasonFailed
		if cause := context.Cause(ctx); !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	case errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		reason = ReasonTimeout
	}
	return &StepError{Reason: reason, Err: fmt.Errorf("probing %s: %w", address, err)}
}

// verifyTLSChain verifies the leaf for name at now against roots, nil meaning the system
// roots, using the rest of the presented chain as intermediates.
func verifyTLSChain(chain []*x509.Certificate, roots *x509.CertPool, name string,
	now time.Time,
) error {
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		DNSName:       name,
		CurrentTime:   now,
	})
	return err
}

func (r tlsProbeResult) facts(protocol string, now time.Time) Facts {
	leaf := r.chain[0]
	fingerprint := sha256.Sum256(leaf.Raw)
	verifyError := ""
	if r.verifyErr != nil {
		verifyError = r.verifyErr.Error()
	}
	return Facts{
		"not_after":    leaf.NotAfter,
		"not_before":   leaf.NotBefore,
		"days_left":    daysLeft(leaf.NotAfter, now),
		"serial":       leaf.SerialNumber.Text(16),
		"issuer":       certName(leaf.Issuer),
		"subject":      certName(leaf.Subject),
		"dns_names":    append([]string{}, leaf.DNSNames...),
		"sha256":       hex.EncodeToString(fingerprint[:]),
		"verified":     r.verifyErr == nil,
		"verify_error": verifyError,
		"protocol":     protocol,
	}
}

// daysLeft counts whole days from now until notAfter, rounding down, so that a
// certificate that expired an hour ago has -1 days left.
func daysLeft(notAfter, now time.Time) int64 {
	return int64(math.Floor(notAfter.Sub(now).Hours() / 24))
}

func certName(n pkix.Name) string {
	if n.CommonName != "" {
		return n.CommonName
	}
	return n.String()
}

// Bounds on what the plaintext part of a STARTTLS exchange reads from a server.
const (
	starttlsMaxLineBytes = 4096 // one line, its line ending included
	starttlsMaxLines     = 64   // one reply
)

// smtpClientName is the name the probe gives in EHLO.
const smtpClientName = "localhost"

var errSTARTTLSNotOffered = errors.New("server does not offer STARTTLS")

// negotiateSTARTTLS runs the plaintext exchange of mode on conn up to the point where
// the TLS handshake starts. It does nothing for none.
func negotiateSTARTTLS(conn io.ReadWriter, mode string) error {
	c := &starttlsConn{r: bufio.NewReaderSize(conn, starttlsMaxLineBytes), w: conn}
	switch mode {
	case starttlsSMTP:
		return c.startSMTP()
	case starttlsIMAP:
		return c.startIMAP()
	}
	return nil
}

// starttlsConn reads and writes the plaintext part of a STARTTLS exchange, with every
// line and every reply bounded.
type starttlsConn struct {
	r *bufio.Reader
	w io.Writer
}

func (c *starttlsConn) readLine() (string, error) {
	line, isPrefix, err := c.r.ReadLine()
	if errors.Is(err, io.EOF) {
		return "", io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", err
	}
	if isPrefix {
		return "", fmt.Errorf("line longer than %d bytes", starttlsMaxLineBytes)
	}
	return string(line), nil
}

func (c *starttlsConn) writeLine(line string) error {
	_, err := io.WriteString(c.w, line+"\r\n")
	return err
}

// checkDrained refuses to start TLS when the server sent more than its reply to
// STARTTLS: those bytes would otherwise be taken as part of the TLS session.
func (c *starttlsConn) checkDrained() error {
	if c.r.Buffered() > 0 {
		return errors.New("server sent data after its STARTTLS reply")
	}
	return nil
}

func (c *starttlsConn) startSMTP() error {
	if _, err := c.readSMTPReply(220); err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}

	if err := c.writeLine("EHLO " + smtpClientName); err != nil {
		return fmt.Errorf("sending EHLO: %w", err)
	}
	ext, err := c.readSMTPReply(250)
	if err != nil {
		return fmt.Errorf("reading EHLO reply: %w", err)
	}
	if !smtpOffersSTARTTLS(ext) {
		return errSTARTTLSNotOffered
	}

	if err := c.writeLine("STARTTLS"); err != nil {
		return fmt.Errorf("sending STARTTLS: %w", err)
	}
	if _, err := c.readSMTPReply(220); err != nil {
		return fmt.Errorf("reading STARTTLS reply: %w", err)
	}

	return c.checkDrained()
}

// readSMTPReply reads one reply, single- or multi-line, and returns the text of its
// lines. Any code other than want is an error.
func (c *starttlsConn) readSMTPReply(want int) ([]string, error) {
	var texts []string
	for range starttlsMaxLines {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		code, more, text, ok := parseSMTPLine(line)
		if !ok {
			return nil, fmt.Errorf("malformed reply line %s", quoteServerText(line))
		}
		if code != want {
			return nil, fmt.Errorf("server replied %s", quoteServerText(line))
		}
		texts = append(texts, text)
		if !more {
			return texts, nil
		}
	}
	return nil, fmt.Errorf("reply longer than %d lines", starttlsMaxLines)
}

// parseSMTPLine splits a reply line into its code, whether more lines follow, and its
// text.
func parseSMTPLine(line string) (code int, more bool, text string, ok bool) {
	if len(line) < 3 {
		return 0, false, "", false
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", false
		}
		code = code*10 + int(line[i]-'0')
	}
	switch {
	case len(line) == 3:
		return code, false, "", true
	case line[3] == '-':
		return code, true, line[4:], true
	case line[3] == ' ':
		return code, false, line[4:], true
	}
	return 0, false, "", false
}

// smtpOffersSTARTTLS reports whether an EHLO reply lists the STARTTLS extension. Its
// first line is the server's name, not an extension.
func smtpOffersSTARTTLS(ext []string) bool {
	for i, line := range ext {
		keyword, _, _ := strings.Cut(line, " ")
		if i > 0 && strings.EqualFold(keyword, "STARTTLS") {
			return true
		}
	}
	return false
}

func (c *starttlsConn) startIMAP() error {
	greeting, err := c.readLine()
	if err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	caps, err := parseIMAPGreeting(greeting)
	if err != nil {
		return err
	}

	if caps == nil {
		untagged, err := c.imapCommand("a1", "CAPABILITY")
		if err != nil {
			return fmt.Errorf("asking for capabilities: %w", err)
		}
		caps = imapCapabilities(untagged)
	}
	if !containsFold(caps, "STARTTLS") {
		return errSTARTTLSNotOffered
	}

	if _, err := c.imapCommand("a2", "STARTTLS"); err != nil {
		return fmt.Errorf("sending STARTTLS: %w", err)
	}

	return c.checkDrained()
}

// parseIMAPGreeting accepts an OK greeting and returns the capabilities it carries, or
// nil when it carries none. PREAUTH is refused: STARTTLS is not allowed after it.
func parseIMAPGreeting(line string) ([]string, error) {
	const ok, capCode = "* OK", "[CAPABILITY "
	if !hasPrefixFold(line, ok) || (len(line) > len(ok) && line[len(ok)] != ' ') {
		return nil, fmt.Errorf("server greeted %s", quoteServerText(line))
	}
	rest := strings.TrimLeft(line[len(ok):], " ")
	if !hasPrefixFold(rest, capCode) {
		return nil, nil
	}
	list, _, found := strings.Cut(rest[len(capCode):], "]")
	if !found {
		return nil, nil
	}
	return strings.Fields(list), nil
}

// imapCommand sends a tagged command and reads up to its tagged reply, returning the
// untagged lines before it. A reply other than OK is an error.
func (c *starttlsConn) imapCommand(tag, command string) ([]string, error) {
	if err := c.writeLine(tag + " " + command); err != nil {
		return nil, err
	}
	var untagged []string
	for range starttlsMaxLines {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "* ") {
			untagged = append(untagged, line)
			continue
		}
		gotTag, rest, _ := strings.Cut(line, " ")
		status, _, _ := strings.Cut(rest, " ")
		if gotTag != tag || !strings.EqualFold(status, "OK") {
			return nil, fmt.Errorf("server replied %s", quoteServerText(line))
		}
		return untagged, nil
	}
	return nil, fmt.Errorf("reply longer than %d lines", starttlsMaxLines)
}

// imapCapabilities collects the capabilities listed in untagged CAPABILITY responses.
func imapCapabilities(untagged []string) []string {
	const prefix = "* CAPABILITY "
	caps := []string{}
	for _, line := range untagged {
		if hasPrefixFold(line, prefix) {
			caps = append(caps, strings.Fields(line[len(prefix):])...)
		}
	}
	return caps
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// quoteServerText quotes what a server sent for an error message, cut short so that a
// hostile server cannot fill the logs.
func quoteServerText(s string) string {
	const limit = 80
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}
