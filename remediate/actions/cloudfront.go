package actions

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
)

// NewCloudFrontViewerCertificate returns the cloudfront.viewer_certificate action, which
// reports the certificate a distribution serves and whether it is the expected one.
func NewCloudFrontViewerCertificate(a *AWS) Action { return &viewerCertificate{aws: a} }

type viewerCertificate struct{ aws *AWS }

// Spec declares cloudfront.viewer_certificate.
func (v *viewerCertificate) Spec() Spec {
	return Spec{
		Name: "cloudfront.viewer_certificate",
		Doc: "Reports the viewer certificate of a CloudFront distribution, given by id or " +
			"found by one of its alternate domain names, and whether it is the expected ACM " +
			"certificate: a distribution pinned to an older ARN keeps serving the old " +
			"certificate whatever ACM renews. Finding by alias pages through the account's " +
			"distributions (100 a call), since CloudFront has no lookup by alias; an exact alias " +
			"wins over a wildcard one. Read-only. IAM: cloudfront:GetDistribution is needed with " +
			"distribution_id, cloudfront:ListDistributions with alias.",
		Params: []Param{
			{Name: "distribution_id", Type: String,
				Doc: "The distribution's id. Either distribution_id or alias is required."},
			{Name: "alias", Type: String,
				Doc: "An alternate domain name (CNAME) of the distribution, such as the " +
					"control domain of https://<control-domain>/."},
			{Name: "expected_arn", Type: String, Required: true,
				Doc: "The ARN of the ACM certificate the distribution should serve, such as " +
					"acm.describe's arn (a certificate in us-east-1)."},
		},
		Facts: []Fact{
			{Name: "distribution_id", Type: String, Doc: "The distribution's id."},
			{Name: "domain_name", Type: String, Doc: "The distribution's own name, *.cloudfront.net."},
			{Name: "aliases", Type: StringList, Doc: "The distribution's alternate domain names."},
			{Name: "status", Type: String, Doc: "Deployed, or InProgress while a change spreads."},
			{Name: "serving_arn", Type: String,
				Doc: "The ARN of the ACM certificate served; empty for an IAM or the default " +
					"CloudFront certificate."},
			{Name: "certificate_source", Type: String,
				Doc: "acm, iam, or cloudfront for the default *.cloudfront.net certificate."},
			{Name: "current", Type: Bool, Doc: "Whether serving_arn is expected_arn."},
		},
		// GetDistribution is called with distribution_id, ListDistributions with alias
		IAM: []string{"cloudfront:GetDistribution", "cloudfront:ListDistributions"},
	}
}

// distributionTarget is which distribution a step asks for.
type distributionTarget struct {
	id          string
	alias       string
	expectedARN string
}

func parseDistributionTarget(p Params) (distributionTarget, error) {
	t := distributionTarget{
		id:          strings.TrimSpace(p.String("distribution_id")),
		alias:       normalizeDNSName(p.String("alias")),
		expectedARN: strings.TrimSpace(p.String("expected_arn")),
	}
	switch {
	case t.id == "" && t.alias == "":
		return distributionTarget{}, Invalid("distribution_id or alias: one is required")
	case t.expectedARN == "":
		return distributionTarget{}, Invalid("expected_arn: required")
	}
	return t, nil
}

// Request describes the lookup.
func (v *viewerCertificate) Request(p Params, _ Env) (Request, error) {
	t, err := parseDistributionTarget(p)
	if err != nil {
		return Request{}, err
	}
	if t.id != "" {
		return Request{Service: "cloudfront", Operation: "GetDistribution",
			Input: map[string]any{"Id": t.id, "ExpectedCertificateArn": t.expectedARN}}, nil
	}
	return Request{Service: "cloudfront", Operation: "ListDistributions",
		Input: map[string]any{"Alias": t.alias, "ExpectedCertificateArn": t.expectedARN}}, nil
}

// Run finds the distribution and compares its certificate with the expected one.
func (v *viewerCertificate) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	t, err := parseDistributionTarget(p)
	if err != nil {
		return nil, err
	}
	cfg, err := v.aws.globalConfig(ctx)
	if err != nil {
		return nil, err
	}
	client := cloudfront.NewFromConfig(cfg)

	var d distributionView
	if t.id != "" {
		d, err = getDistribution(ctx, client, t.id)
	} else {
		d, err = findDistribution(ctx, client, t.alias)
	}
	if err != nil {
		return nil, err
	}

	return d.facts(t.expectedARN), nil
}

// distributionView is what the action reads of a distribution, from GetDistribution or
// from a ListDistributions summary.
type distributionView struct {
	id, domainName, status string
	aliases                []string
	cert                   *cftypes.ViewerCertificate
}

func getDistribution(ctx context.Context, client *cloudfront.Client, id string) (distributionView, error) {
	out, err := client.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(id)})
	if err != nil {
		return distributionView{}, awsError("getting distribution "+id, err)
	}
	d := out.Distribution
	if d == nil || d.DistributionConfig == nil {
		return distributionView{}, &StepError{Reason: ReasonFailed,
			Err: fmt.Errorf("getting distribution %s: the answer holds no configuration", id)}
	}
	return distributionView{
		id: aws.ToString(d.Id), domainName: aws.ToString(d.DomainName), status: aws.ToString(d.Status),
		aliases: aliasItems(d.DistributionConfig.Aliases), cert: d.DistributionConfig.ViewerCertificate,
	}, nil
}

// findDistribution pages through the distributions for the one serving alias: exactly,
// or else through a wildcard alias.
func findDistribution(ctx context.Context, client *cloudfront.Client, alias string) (distributionView, error) {
	var wildcard *cftypes.DistributionSummary
	in := &cloudfront.ListDistributionsInput{MaxItems: aws.Int32(100)}
	pages := cloudfront.NewListDistributionsPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return distributionView{}, awsError("listing distributions", err)
		}
		if page.DistributionList == nil {
			break
		}
		for i := range page.DistributionList.Items {
			s := &page.DistributionList.Items[i]
			for _, a := range aliasItems(s.Aliases) {
				switch {
				case normalizeDNSName(a) == alias:
					return summaryView(s), nil
				case wildcard == nil && nameCovers(a, alias):
					wildcard = s
				}
			}
		}
	}
	if wildcard != nil {
		return summaryView(wildcard), nil
	}
	return distributionView{}, &StepError{Reason: ReasonNotFound,
		Err: fmt.Errorf("finding the distribution of %s: no distribution has it as an alias", alias)}
}

func summaryView(s *cftypes.DistributionSummary) distributionView {
	return distributionView{
		id: aws.ToString(s.Id), domainName: aws.ToString(s.DomainName), status: aws.ToString(s.Status),
		aliases: aliasItems(s.Aliases), cert: s.ViewerCertificate,
	}
}

func aliasItems(a *cftypes.Aliases) []string {
	if a == nil {
		return []string{}
	}
	return append([]string{}, a.Items...)
}

func (d distributionView) facts(expectedARN string) Facts {
	serving, source := viewerCertificateARN(d.cert)
	return Facts{
		"distribution_id":    d.id,
		"domain_name":        d.domainName,
		"aliases":            d.aliases,
		"status":             d.status,
		"serving_arn":        serving,
		"certificate_source": source,
		"current":            serving == expectedARN,
	}
}

// viewerCertificateARN returns the ACM certificate a viewer certificate names and where
// the certificate comes from. An ACM ARN wins: AWS clears the default-certificate flag
// when one is set, moto keeps both.
func viewerCertificateARN(vc *cftypes.ViewerCertificate) (arn, source string) {
	switch {
	case vc == nil:
		return "", "cloudfront"
	case aws.ToString(vc.ACMCertificateArn) != "":
		return aws.ToString(vc.ACMCertificateArn), "acm"
	case aws.ToString(vc.IAMCertificateId) != "":
		return "", "iam"
	}
	return "", "cloudfront"
}
