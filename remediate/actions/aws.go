package actions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"
)

// AWSOptions choose how the AWS actions reach AWS. The zero value uses the standard
// credential chain (environment, web identity as IRSA gives it, the ECS task role, shared
// profiles, the instance role), the region of AWS_REGION or the shared config, and the
// endpoints of AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> when they are set.
type AWSOptions struct {
	// Region replaces the region the environment and shared config give; empty keeps it.
	// A step's own region parameter wins over both.
	Region string
	// APIOptions are added to every AWS client's middleware stack. Tests record the
	// operations the actions call with them.
	APIOptions []func(*middleware.Stack) error
}

// AWS loads the AWS configuration on first use and shares it between the AWS actions, so
// that validating policies, and running policies without AWS steps, never needs
// credentials. A load that fails is not kept: the next step tries again.
type AWS struct {
	opts AWSOptions

	mu  sync.Mutex
	cfg *aws.Config
}

// NewAWS returns a lazy loader of the AWS configuration.
func NewAWS(opts AWSOptions) *AWS {
	return &AWS{opts: opts}
}

// Config returns the shared AWS configuration, loading it the first time. Loading reads
// the environment and the shared config files; credentials are fetched later, by the
// first call that needs them.
func (a *AWS) Config(ctx context.Context) (aws.Config, error) {
	if a == nil {
		return aws.Config{}, Invalid("no AWS configuration was given to the AWS actions")
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	if a.cfg != nil {
		return *a.cfg, nil
	}
	cfg, err := a.load(ctx)
	if err != nil {
		return aws.Config{}, &StepError{Reason: ReasonInvalid, Err: fmt.Errorf("loading AWS configuration: %w", err)}
	}
	a.cfg = &cfg
	return cfg, nil
}

func (a *AWS) load(ctx context.Context) (aws.Config, error) {
	// The buildable client is the SDK's own: it honours AWS_CA_BUNDLE, which a plain
	// *http.Client would make the load refuse.
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient()),
	}
	if a.opts.Region != "" {
		opts = append(opts, awsconfig.WithRegion(a.opts.Region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	cfg.APIOptions = append(cfg.APIOptions, a.opts.APIOptions...)
	return cfg, nil
}

// regionalConfig returns the configuration with region, the step's parameter, in place
// of the default when it is set. A region is required: every service the actions call
// needs one to find its endpoint and to sign.
func (a *AWS) regionalConfig(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := a.Config(ctx)
	if err != nil {
		return aws.Config{}, err
	}
	if region != "" {
		cfg.Region = region
	}
	if cfg.Region == "" {
		return aws.Config{}, Invalid("no AWS region: set AWS_REGION, a region in the shared " +
			"config, or the step's region parameter")
	}
	return cfg, nil
}

// globalRegion is where the global services, Route 53 and CloudFront, are signed and
// called when no region is configured.
const globalRegion = "us-east-1"

// globalConfig returns the configuration for a global service, which takes any region
// and needs one only to build its client.
func (a *AWS) globalConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := a.Config(ctx)
	if err != nil {
		return aws.Config{}, err
	}
	if cfg.Region == "" {
		cfg.Region = globalRegion
	}
	return cfg, nil
}

// singleShot turns the SDK's retries off for one call. Mutating calls are made once per
// decision: a retried call that had in fact succeeded would be a second change, and the
// guards, not the SDK, decide whether a later run may try again.
func singleShot(r aws.Retryer) aws.Retryer {
	return retry.AddWithMaxAttempts(r, 1)
}

// Log keys of the AWS actions.
const (
	keyZoneID   = "zone_id"
	keyChangeID = "change_id"
)

// envLogger returns the step's logger, or one that discards everything when the step
// has none.
func envLogger(env Env) *zap.Logger {
	if env.Logger == nil {
		return zap.NewNop()
	}
	return env.Logger
}

// regionParam is the parameter every regional AWS action takes.
func regionParam() Param {
	return Param{Name: "region", Type: String,
		Doc: "The AWS region to call; defaults to AWS_REGION or the shared config's region."}
}

// Error codes AWS services return, by the bounded reason they map to. Codes not listed
// fall back on their fault: a server fault is unavailable, anything else failed.
var awsErrorReasons = map[string]string{
	"Throttling":                              ReasonThrottled,
	"ThrottlingException":                     ReasonThrottled,
	"ThrottledException":                      ReasonThrottled,
	"RequestLimitExceeded":                    ReasonThrottled,
	"TooManyRequestsException":                ReasonThrottled,
	"RequestThrottled":                        ReasonThrottled,
	"RequestThrottledException":               ReasonThrottled,
	"PriorRequestNotComplete":                 ReasonThrottled,
	"SlowDown":                                ReasonThrottled,
	"AccessDenied":                            ReasonDenied,
	"AccessDeniedException":                   ReasonDenied,
	"UnauthorizedOperation":                   ReasonDenied,
	"UnrecognizedClientException":             ReasonDenied,
	"InvalidClientTokenId":                    ReasonDenied,
	"InvalidSignatureException":               ReasonDenied,
	"SignatureDoesNotMatch":                   ReasonDenied,
	"ExpiredToken":                            ReasonDenied,
	"ExpiredTokenException":                   ReasonDenied,
	"MissingAuthenticationToken":              ReasonDenied,
	"NotAuthorizedException":                  ReasonDenied,
	"ResourceNotFoundException":               ReasonNotFound,
	"NoSuchHostedZone":                        ReasonNotFound,
	"NoSuchChange":                            ReasonNotFound,
	"NoSuchDistribution":                      ReasonNotFound,
	"ListenerNotFound":                        ReasonNotFound,
	"LoadBalancerNotFound":                    ReasonNotFound,
	"CertificateNotFound":                     ReasonNotFound,
	"InvalidChangeBatch":                      ReasonInvalid,
	"InvalidInput":                            ReasonInvalid,
	"InvalidArgument":                         ReasonInvalid,
	"InvalidArnException":                     ReasonInvalid,
	"InvalidParameterException":               ReasonInvalid,
	"InvalidParameterValue":                   ReasonInvalid,
	"InvalidConfigurationRequest":             ReasonInvalid,
	"ValidationException":                     ReasonInvalid,
	"ValidationError":                         ReasonInvalid,
	"IncompatibleProtocols":                   ReasonInvalid,
	"UnsupportedCertificate":                  ReasonInvalid,
	"InvalidDomainValidationOptionsException": ReasonInvalid,
	"InternalFailure":                         ReasonUnavailable,
	"InternalError":                           ReasonUnavailable,
	"InternalServerError":                     ReasonUnavailable,
	"ServiceUnavailable":                      ReasonUnavailable,
	"ServiceUnavailableException":             ReasonUnavailable,
}

// awsReason classifies an error an AWS call returned into a bounded reason.
func awsReason(err error) string {
	if errors.Is(err, context.Canceled) {
		return ReasonFailed
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErrorReason(apiErr)
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return ReasonUnavailable
	}
	return ReasonFailed
}

func apiErrorReason(apiErr smithy.APIError) string {
	code := apiErr.ErrorCode()
	if reason, ok := awsErrorReasons[code]; ok {
		return reason
	}
	switch {
	case strings.HasSuffix(code, "NotFound"), strings.HasSuffix(code, "NotFoundException"),
		strings.HasPrefix(code, "NoSuch"):
		return ReasonNotFound
	case apiErr.ErrorFault() == smithy.FaultServer:
		return ReasonUnavailable
	}
	return ReasonFailed
}

// awsError wraps a failed AWS call as a StepError: "what" is the gerund phrase of what
// was being done ("describing certificate arn:...").
func awsError(what string, err error) error {
	var se *StepError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return &StepError{Reason: awsReason(err), Err: fmt.Errorf("%s: %w", what, err)}
}

// normalizeDNSName puts a DNS name in the form names are compared in: lower case,
// without the trailing dot, with Route 53's octal escapes (\052 for '*') decoded. DNS
// names compare without regard to case.
func normalizeDNSName(name string) string {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if strings.Contains(name, `\`) {
		name = decodeOctalEscapes(name)
	}
	return strings.ToLower(name)
}

// decodeOctalEscapes decodes \ooo escapes as Route 53 writes characters other than
// letters, digits, '-' and '_' in names.
func decodeOctalEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c, ok := octalEscape(s[i:]); ok {
			b.WriteByte(c)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// octalEscape decodes the \ooo escape s starts with, if it starts with one.
func octalEscape(s string) (byte, bool) {
	if len(s) < 4 || s[0] != '\\' {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[1:4]) {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v<<3 | int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// nameCovers reports whether a certificate name (a DNS name or a wildcard such as
// *.example.test) covers host. A wildcard covers exactly one label.
func nameCovers(certName, host string) bool {
	certName, host = normalizeDNSName(certName), normalizeDNSName(host)
	if certName == host {
		return true
	}
	rest, ok := strings.CutPrefix(certName, "*.")
	if !ok {
		return false
	}
	_, parent, found := strings.Cut(host, ".")
	return found && parent == rest
}

// inDomain reports whether name is domain or a name under it.
func inDomain(name, domain string) bool {
	name, domain = normalizeDNSName(name), normalizeDNSName(domain)
	return name == domain || strings.HasSuffix(name, "."+domain)
}
