package actions

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// NewSSMCertificate returns the ssm.certificate action, which reports the certificate an
// SSM parameter holds without ever letting the parameter's value out of memory.
func NewSSMCertificate(a *AWS) Action {
	return &ssmCertificate{aws: a, now: time.Now}
}

type ssmCertificate struct {
	aws *AWS
	now func() time.Time
}

// Spec declares ssm.certificate.
func (s *ssmCertificate) Spec() Spec {
	return Spec{
		Name: "ssm.certificate",
		Doc: "Reads an SSM parameter holding a PEM certificate, leaf first as certbot writes " +
			"fullchain files, decrypting a SecureString, and reports the leaf's validity, names, " +
			"serial and fingerprint. The value is parsed in memory and goes nowhere else: not " +
			"to facts, logs, errors or the audit log. A value that is not a PEM certificate, or " +
			"that holds a private key, fails the step without quoting it. Name only the " +
			"certificate's parameter, never its key's, and grant ssm:GetParameter on that " +
			"parameter alone (with kms:Decrypt on its key for a SecureString). Read-only.",
		Params: []Param{
			{Name: "name", Type: String, Required: true,
				Doc: "The parameter's name (/cabal/control_domain_ssl_cert) or ARN."},
			regionParam(),
		},
		Facts: storedCertificateFacts(),
		IAM:   []string{"ssm:GetParameter", "kms:Decrypt"},
	}
}

// storedCertificateFacts declares what is reported about a stored certificate: only what
// a public certificate says anyway.
func storedCertificateFacts() []Fact {
	return []Fact{
		{Name: "not_after", Type: Time, Doc: "The end of the leaf certificate's validity."},
		{Name: "days_left", Type: Int,
			Doc: "Whole days from now until not_after, negative once it has passed."},
		{Name: "serial", Type: String, Doc: "The leaf's serial number in lowercase hex."},
		{Name: "dns_names", Type: StringList, Doc: "The DNS names the leaf is valid for."},
		{Name: "sha256", Type: String,
			Doc: "The SHA-256 fingerprint of the leaf's DER encoding in lowercase hex, as " +
				"tls.probe reports it: equal fingerprints mean the same certificate."},
	}
}

// ssmTarget is the parameter a step names.
type ssmTarget struct {
	name   string
	region string
}

func parseSSMTarget(p Params) (ssmTarget, error) {
	t := ssmTarget{name: strings.TrimSpace(p.String("name")), region: p.String("region")}
	if t.name == "" {
		return ssmTarget{}, Invalid("name: required")
	}
	return t, nil
}

// Request describes the one GetParameter call.
func (s *ssmCertificate) Request(p Params, _ Env) (Request, error) {
	t, err := parseSSMTarget(p)
	if err != nil {
		return Request{}, err
	}
	in := map[string]any{"Name": t.name, "WithDecryption": true}
	return Request{Service: "ssm", Operation: "GetParameter", Input: withRegion(in, t.region)}, nil
}

// Run reads the parameter and reports its certificate.
func (s *ssmCertificate) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	t, err := parseSSMTarget(p)
	if err != nil {
		return nil, err
	}
	cfg, err := s.aws.regionalConfig(ctx, t.region)
	if err != nil {
		return nil, err
	}

	out, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{
		Name: aws.String(t.name), WithDecryption: aws.Bool(true),
	})
	if err != nil {
		return nil, awsError("reading parameter "+t.name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return nil, &StepError{Reason: ReasonFailed,
			Err: fmt.Errorf("reading parameter %s: the answer holds no value", t.name)}
	}

	leaf, err := parseStoredCertificate([]byte(aws.ToString(out.Parameter.Value)))
	if err != nil {
		return nil, Invalid("reading parameter %s: %w", t.name, err)
	}
	return certificateSummary(leaf, s.now()), nil
}

// parseStoredCertificate returns the first certificate of a PEM value. Its errors never
// quote the value: it may be a secret that was stored under the wrong name.
func parseStoredCertificate(value []byte) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	blocks := 0
	for rest := value; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		blocks++
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("the value holds a private key; name the certificate's parameter instead")
		}
		if block.Type != "CERTIFICATE" || leaf != nil {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing its first certificate: %w", err)
		}
		leaf = cert
	}
	switch {
	case leaf != nil:
		return leaf, nil
	case blocks == 0:
		return nil, fmt.Errorf("the value is not PEM: want a certificate, leaf first")
	}
	return nil, fmt.Errorf("the value holds %d PEM blocks and no certificate", blocks)
}

// certificateSummary reports the public facts of a certificate.
func certificateSummary(leaf *x509.Certificate, now time.Time) Facts {
	fingerprint := sha256.Sum256(leaf.Raw)
	return Facts{
		"not_after": leaf.NotAfter,
		"days_left": daysLeft(leaf.NotAfter, now),
		"serial":    leaf.SerialNumber.Text(16),
		"dns_names": append([]string{}, leaf.DNSNames...),
		"sha256":    hex.EncodeToString(fingerprint[:]),
	}
}
