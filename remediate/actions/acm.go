package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	acmtypes "github.com/aws/aws-sdk-go-v2/service/acm/types"
)

// NewACMDescribe returns the acm.describe action, which reports an ACM certificate, its
// renewal and the DNS records that validate it.
func NewACMDescribe(a *AWS) Action {
	return &acmDescribe{aws: a, now: time.Now}
}

type acmDescribe struct {
	aws *AWS
	now func() time.Time
}

// Spec declares acm.describe.
func (d *acmDescribe) Spec() Spec {
	return Spec{
		Name: "acm.describe",
		Doc: "Describes an ACM certificate, given by ARN or found by a host name it must " +
			"cover, and reports its status, validity, renewal and the DNS records that " +
			"validate it. Looking it up by host lists the region's certificates of every key " +
			"type and describes those whose names may cover the host; among those that do, it " +
			"prefers an issued certificate, then one in use, then the latest expiry (with prefer: " +
			"latest, an issued certificate, then the latest expiry, in use or not). Read-only.",
		Params: []Param{
			{Name: "arn", Type: String,
				Doc: "The certificate's ARN. Either arn or domain is required."},
			{Name: "domain", Type: String,
				Doc: "A host name the certificate's name or one of its alternative names must " +
					"cover, a wildcard covering one label (*.example.test covers " +
					"imap.example.test). Used when arn is empty."},
			{Name: "prefer", Type: String, Default: preferInUse,
				Doc: "With domain: in_use prefers the certificate a resource uses, to read the " +
					"state of what is served; latest prefers the newest, to find what a " +
					"listener or distribution should serve."},
			regionParam(),
		},
		Facts: acmFacts(),
		IAM:   []string{"acm:DescribeCertificate", "acm:ListCertificates"},
	}
}

func acmFacts() []Fact {
	return []Fact{
		{Name: "arn", Type: String, Doc: "The certificate's ARN."},
		{Name: "domain_name", Type: String, Doc: "The certificate's primary name."},
		{Name: "names", Type: StringList, Doc: "Every name the certificate covers."},
		{Name: "status", Type: String,
			Doc: "ISSUED, PENDING_VALIDATION, EXPIRED, REVOKED, FAILED, VALIDATION_TIMED_OUT or INACTIVE."},
		{Name: "type", Type: String, Doc: "AMAZON_ISSUED, IMPORTED or PRIVATE."},
		{Name: "not_after", Type: Time,
			Doc: "The end of the certificate's validity; the zero time when it has none yet."},
		{Name: "days_left", Type: Int,
			Doc: "Whole days from now until not_after, negative once it has passed; 0 " +
				"without a not_after."},
		{Name: "renewal_eligibility", Type: String,
			Doc: "ELIGIBLE or INELIGIBLE: ACM renews only certificates in use."},
		{Name: "renewal_status", Type: String,
			Doc: "PENDING_AUTO_RENEWAL, PENDING_VALIDATION, SUCCESS or FAILED while a renewal " +
				"is under way or has ended; empty when ACM has not started one."},
		{Name: "renewal_reason", Type: String,
			Doc: "Why the renewal failed (CAA_ERROR, DOMAIN_VALIDATION_DENIED, ...); empty " +
				"otherwise."},
		{Name: "in_use_by", Type: StringList,
			Doc: "The ARNs of the resources using the certificate (load balancers, distributions)."},
		{Name: "in_use", Type: Bool, Doc: "Whether in_use_by lists any resource."},
		{Name: "validation_records", Type: ObjectList,
			Doc: "The DNS records that validate the certificate's names, each {name, type, " +
				"value}, taken from the renewal when one is under way, else from the " +
				"certificate. Names that share a record (a wildcard and its apex) give it once."},
	}
}

// acmTarget is which certificate a step asks for.
type acmTarget struct {
	arn    string
	domain string
	region string
	latest bool // prefer the newest certificate to the one in use
}

// Values of acm.describe's prefer parameter.
const (
	preferInUse  = "in_use"
	preferLatest = "latest"
)

func parseACMTarget(p Params) (acmTarget, error) {
	t := acmTarget{arn: strings.TrimSpace(p.String("arn")), domain: normalizeDNSName(p.String("domain")),
		region: p.String("region")}
	if t.arn == "" && t.domain == "" {
		return acmTarget{}, Invalid("arn or domain: one is required")
	}
	switch p.String("prefer") {
	case "", preferInUse:
	case preferLatest:
		t.latest = true
	default:
		return acmTarget{}, Invalid("prefer: %q is neither in_use nor latest", p.String("prefer"))
	}
	return t, nil
}

// Request describes the lookup: one DescribeCertificate by ARN, or ListCertificates and
// DescribeCertificate of the candidates by domain.
func (d *acmDescribe) Request(p Params, _ Env) (Request, error) {
	t, err := parseACMTarget(p)
	if err != nil {
		return Request{}, err
	}
	if t.arn != "" {
		return Request{Service: "acm", Operation: "DescribeCertificate",
			Input: withRegion(map[string]any{"CertificateArn": t.arn}, t.region)}, nil
	}
	in := map[string]any{"Domain": t.domain, "KeyTypes": allKeyTypes(), "Prefer": preferInUse}
	if t.latest {
		in["Prefer"] = preferLatest
	}
	return Request{Service: "acm", Operation: "ListCertificates+DescribeCertificate",
		Input: withRegion(in, t.region)}, nil
}

func withRegion(in map[string]any, region string) map[string]any {
	if region != "" {
		in["Region"] = region
	}
	return in
}

// Run describes the certificate and reports its facts.
func (d *acmDescribe) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	t, err := parseACMTarget(p)
	if err != nil {
		return nil, err
	}
	cfg, err := d.aws.regionalConfig(ctx, t.region)
	if err != nil {
		return nil, err
	}
	client := acm.NewFromConfig(cfg)

	var cert *acmtypes.CertificateDetail
	if t.arn != "" {
		cert, err = describeCertificate(ctx, client, t.arn)
	} else {
		cert, err = findCertificate(ctx, client, t.domain, cfg.Region, t.latest)
	}
	if err != nil {
		return nil, err
	}

	return certificateFacts(cert, d.now()), nil
}

func describeCertificate(ctx context.Context, client *acm.Client, arn string) (*acmtypes.CertificateDetail, error) {
	out, err := client.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		return nil, awsError("describing certificate "+arn, err)
	}
	if out.Certificate == nil {
		return nil, &StepError{Reason: ReasonFailed,
			Err: fmt.Errorf("describing certificate %s: the answer holds no certificate", arn)}
	}
	return out.Certificate, nil
}

// allKeyTypes lists every key algorithm: without them, ListCertificates returns only
// RSA 2048 certificates.
func allKeyTypes() []acmtypes.KeyAlgorithm {
	return acmtypes.KeyAlgorithm("").Values()
}

// findCertificate returns the best certificate of the region that covers host.
func findCertificate(ctx context.Context, client *acm.Client, host, region string, latest bool,
) (*acmtypes.CertificateDetail, error) {
	summaries, err := listCertificates(ctx, client)
	if err != nil {
		return nil, err
	}

	var best *acmtypes.CertificateDetail
	for _, s := range summaries {
		if summaryExcludes(s, host) {
			continue
		}
		cert, err := describeCertificate(ctx, client, aws.ToString(s.CertificateArn))
		if err != nil {
			return nil, err
		}
		if certificateCovers(cert, host) && (best == nil || betterCertificate(cert, best, latest)) {
			best = cert
		}
	}
	if best == nil {
		return nil, &StepError{Reason: ReasonNotFound,
			Err: fmt.Errorf("finding a certificate for %s: none of the %d certificates in %s covers it",
				host, len(summaries), region)}
	}
	return best, nil
}

func listCertificates(ctx context.Context, client *acm.Client) ([]acmtypes.CertificateSummary, error) {
	in := &acm.ListCertificatesInput{Includes: &acmtypes.Filters{KeyTypes: allKeyTypes()}}
	var out []acmtypes.CertificateSummary
	pages := acm.NewListCertificatesPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awsError("listing certificates", err)
		}
		out = append(out, page.CertificateSummaryList...)
	}
	return out, nil
}

// summaryExcludes reports whether a certificate's summary proves that it cannot cover
// host, so that it need not be described. AWS lists the primary name among the
// alternative names' summary and says when that summary is cut short; a summary without
// any alternative name (moto gives none) proves nothing.
func summaryExcludes(s acmtypes.CertificateSummary, host string) bool {
	names := s.SubjectAlternativeNameSummaries
	if len(names) == 0 || aws.ToBool(s.HasAdditionalSubjectAlternativeNames) {
		return false
	}
	if nameCovers(aws.ToString(s.DomainName), host) {
		return false
	}
	return !slices.ContainsFunc(names, func(n string) bool { return nameCovers(n, host) })
}

func certificateCovers(c *acmtypes.CertificateDetail, host string) bool {
	return slices.ContainsFunc(certificateNames(c), func(n string) bool { return nameCovers(n, host) })
}

// certificateNames lists the names a certificate covers, its primary name first.
func certificateNames(c *acmtypes.CertificateDetail) []string {
	names := []string{}
	if n := aws.ToString(c.DomainName); n != "" {
		names = append(names, n)
	}
	for _, n := range c.SubjectAlternativeNames {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// betterCertificate reports whether a is to be preferred to b: issued first, then in
// use (unless latest), then the later expiry.
func betterCertificate(a, b *acmtypes.CertificateDetail, latest bool) bool {
	aIssued, bIssued := a.Status == acmtypes.CertificateStatusIssued, b.Status == acmtypes.CertificateStatusIssued
	if aIssued != bIssued {
		return aIssued
	}
	if aUsed, bUsed := len(a.InUseBy) > 0, len(b.InUseBy) > 0; aUsed != bUsed && !latest {
		return aUsed
	}
	return aws.ToTime(a.NotAfter).After(aws.ToTime(b.NotAfter))
}

// certificateFacts turns a description into the facts acm.describe declares.
func certificateFacts(c *acmtypes.CertificateDetail, now time.Time) Facts {
	notAfter := aws.ToTime(c.NotAfter)
	var days int64
	if !notAfter.IsZero() {
		days = daysLeft(notAfter, now)
	}
	var renewalStatus, renewalReason string
	if r := c.RenewalSummary; r != nil {
		renewalStatus, renewalReason = string(r.RenewalStatus), string(r.RenewalStatusReason)
	}
	inUseBy := append([]string{}, c.InUseBy...)
	return Facts{
		"arn":                 aws.ToString(c.CertificateArn),
		"domain_name":         aws.ToString(c.DomainName),
		"names":               certificateNames(c),
		"status":              string(c.Status),
		"type":                string(c.Type),
		"not_after":           notAfter,
		"days_left":           days,
		"renewal_eligibility": string(c.RenewalEligibility),
		"renewal_status":      renewalStatus,
		"renewal_reason":      renewalReason,
		"in_use_by":           inUseBy,
		"in_use":              len(inUseBy) > 0,
		"validation_records":  validationRecords(c),
	}
}

// validationRecords lists the DNS validation records of a certificate, from its renewal
// when the renewal names any, else from the certificate. A wildcard and its apex are
// validated by one record, which is listed once.
func validationRecords(c *acmtypes.CertificateDetail) []map[string]any {
	options := c.DomainValidationOptions
	if r := c.RenewalSummary; r != nil && hasResourceRecord(r.DomainValidationOptions) {
		options = r.DomainValidationOptions
	}
	out := []map[string]any{}
	seen := map[string]bool{}
	for _, o := range options {
		rr := o.ResourceRecord
		if rr == nil || aws.ToString(rr.Name) == "" {
			continue
		}
		key := normalizeDNSName(aws.ToString(rr.Name)) + " " + string(rr.Type) + " " +
			normalizeDNSName(aws.ToString(rr.Value))
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, map[string]any{
			"name":  aws.ToString(rr.Name),
			"type":  string(rr.Type),
			"value": aws.ToString(rr.Value),
		})
	}
	return out
}

func hasResourceRecord(options []acmtypes.DomainValidation) bool {
	return slices.ContainsFunc(options, func(o acmtypes.DomainValidation) bool { return o.ResourceRecord != nil })
}
