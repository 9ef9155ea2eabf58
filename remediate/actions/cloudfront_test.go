package actions

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/remediator/remediator/internal/testpeer"
)

func TestViewerCertificateAgainstMoto(t *testing.T) {
	a, _, cfg := motoAWS(t)
	old, _ := testpeer.SeedCertificate(t, cfg, "*.example.test", "example.test")
	current, _ := testpeer.SeedCertificate(t, cfg, "*.example.test", "example.test")
	id := testpeer.SeedDistribution(t, cfg, "example.test", old)
	testpeer.SeedDistribution(t, cfg, "www.other.test", current)

	tests := []struct {
		name    string
		p       Params
		current bool
	}{
		{"a distribution found by alias and pinned to an older ARN is not current",
			Params{"alias": "Example.Test.", "expected_arn": current}, false},
		{"a distribution found by alias serving the expected ARN is current",
			Params{"alias": "example.test", "expected_arn": old}, true},
		{"a distribution given by id", Params{"distribution_id": id, "expected_arn": old}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := mustRun(t, NewCloudFrontViewerCertificate(a), tt.p)
			// moto also says CloudFrontDefaultCertificate true and CertificateSource
			// cloudfront; AWS clears both when an ACM certificate is set
			if facts["distribution_id"] != id || facts["serving_arn"] != old || facts["certificate_source"] != "acm" {
				t.Errorf("facts %v, want distribution %s serving %s from acm", facts, id, old)
			}
			if facts["current"] != tt.current {
				t.Errorf("current = %v, want %v", facts["current"], tt.current)
			}
		})
	}
}

func TestViewerCertificateOfAnUnknownAliasIsNotFound(t *testing.T) {
	a, _, cfg := motoAWS(t)
	cert, _ := testpeer.SeedCertificate(t, cfg, "*.example.test")
	testpeer.SeedDistribution(t, cfg, "www.example.test", cert)

	_, err := runAction(t, NewCloudFrontViewerCertificate(a), Params{"alias": "example.test", "expected_arn": cert})
	if reasonOf(err) != ReasonNotFound {
		t.Fatalf("err = %v, want not_found", err)
	}
}

func TestViewerCertificateSourceFollowsAWS(t *testing.T) {
	tests := []struct {
		name      string
		vc        *cftypes.ViewerCertificate
		arn, from string
	}{
		{"an ACM certificate", &cftypes.ViewerCertificate{ACMCertificateArn: aws.String("arn:acm"),
			CloudFrontDefaultCertificate: aws.Bool(false), CertificateSource: cftypes.CertificateSourceAcm},
			"arn:acm", "acm"},
		{"an IAM certificate", &cftypes.ViewerCertificate{IAMCertificateId: aws.String("ASCA1"),
			CertificateSource: cftypes.CertificateSourceIam}, "", "iam"},
		{"the default certificate", &cftypes.ViewerCertificate{CloudFrontDefaultCertificate: aws.Bool(true)},
			"", "cloudfront"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arn, from := viewerCertificateARN(tt.vc)
			if arn != tt.arn || from != tt.from {
				t.Errorf("got %q from %q, want %q from %q", arn, from, tt.arn, tt.from)
			}
		})
	}
}
