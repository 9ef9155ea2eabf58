package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/remediator/remediator/policies"
)

// iamPolicyVersion is the version of the IAM policy language the documents use.
const iamPolicyVersion = "2012-10-17"

// anyResource is the resource of an IAM action no step narrows.
const anyResource = "*"

// iamDocument is an IAM identity-based policy.
type iamDocument struct {
	Version   string         `json:"Version"`
	Statement []iamStatement `json:"Statement"`
}

// iamStatement allows some actions on some resources. Resource is "*" or a list of ARNs.
type iamStatement struct {
	Sid       string       `json:"Sid"`
	Effect    string       `json:"Effect"`
	Action    []string     `json:"Action"`
	Resource  any          `json:"Resource"`
	Condition iamCondition `json:"Condition,omitempty"`
}

// iamCondition is a statement's Condition block: operator, then key, then values.
type iamCondition map[string]map[string][]string

type iamPolicyFlags struct {
	configFile string
	partition  string
	output     string
	explain    bool
}

func registerIAMPolicy(app *kingpin.Application, commands map[string]func(context.Context) int,
	stdout, stderr io.Writer) {
	f := &iamPolicyFlags{}
	cmd := app.Command("iam-policy", "Print the least-privilege IAM policy the loaded policies need, as JSON.")
	cmd.Flag("config.file", "Main configuration file.").Required().StringVar(&f.configFile)
	cmd.Flag("partition", "The AWS partition of the ARNs: aws, aws-cn, aws-us-gov.").Default("aws").
		StringVar(&f.partition)
	cmd.Flag("output", "json: the policy document; external: {\"policy\": \"<document>\"} for "+
		"Terraform's external data source.").Default("json").EnumVar(&f.output, "json", "external")
	cmd.Flag("explain", "Also say on standard error which steps need each action, and why its "+
		"resource is what it is.").BoolVar(&f.explain)

	commands["iam-policy"] = func(context.Context) int {
		_, rules, err := loadAll(f.configFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		needs := iamNeedsOf(rules.Policies.Policies, f.partition)
		if len(needs) == 0 {
			fmt.Fprintln(stderr, "the loaded policies call no AWS API: remediator needs no IAM "+
				"permissions")
		}
		if f.explain {
			explainIAM(stderr, needs)
		}
		if err := writeIAMPolicy(stdout, iamDocumentOf(needs), f.output); err != nil {
			fmt.Fprintf(stderr, "remediator: %s\n", err)
			return 1
		}
		return 0
	}
}

func writeIAMPolicy(w io.Writer, doc iamDocument, output string) error {
	if output == "external" {
		compact, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("encoding the policy: %w", err)
		}
		return json.NewEncoder(w).Encode(map[string]string{"policy": string(compact)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encoding the policy: %w", err)
	}
	return nil
}

// iamNeed is what the loaded policies need of one IAM action: on which resources, under
// which condition, and for which steps.
type iamNeed struct {
	action    string
	any       bool
	resources []string
	condition iamCondition
	// uniform is false once two steps asked for different conditions; the condition then
	// cannot be kept.
	uniform bool
	grants  []iamGrant
}

// iamGrant is what one step needs of one IAM action.
type iamGrant struct {
	step      string // policy/step
	resources []string
	why       string // why the resources are what they are
	condition iamCondition
}

// iamNeedsOf collects, for each IAM action the steps' actions declare, what the steps
// need of it, sorted by action.
func iamNeedsOf(ps []*policies.Policy, partition string) []*iamNeed {
	byAction := map[string]*iamNeed{}
	for _, p := range ps {
		for _, s := range p.Steps {
			for _, action := range s.Spec().IAM {
				n := byAction[action]
				if n == nil {
					n = &iamNeed{action: action, uniform: true}
					byAction[action] = n
				}
				n.add(grantFor(p.Name, s, action, partition))
			}
		}
	}
	out := make([]*iamNeed, 0, len(byAction))
	for _, a := range slices.Sorted(maps.Keys(byAction)) {
		out = append(out, byAction[a])
	}
	return out
}

func (n *iamNeed) add(g iamGrant) {
	if len(n.grants) == 0 {
		n.condition = g.condition
	} else if !conditionsEqual(n.condition, g.condition) {
		n.uniform = false
	}
	n.grants = append(n.grants, g)
	if g.resources == nil {
		n.any = true
	}
	for _, r := range g.resources {
		if !slices.Contains(n.resources, r) {
			n.resources = append(n.resources, r)
		}
	}
}

// resourceList is "*" when any step needs any resource, else the ARNs steps named.
func (n *iamNeed) resourceList() []string {
	if n.any {
		return []string{anyResource}
	}
	return slices.Sorted(slices.Values(n.resources))
}

// finalCondition is the condition every step asked for, or none.
func (n *iamNeed) finalCondition() iamCondition {
	if !n.uniform {
		return nil
	}
	return n.condition
}

func conditionsEqual(a, b iamCondition) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// grantFor works out which resources one step's call of an IAM action can touch.
func grantFor(policy string, s *policies.Step, action, partition string) iamGrant {
	g := iamGrant{step: policy + "/" + s.ID, condition: actionConditions[s.Action+" "+action]}
	rule, ok := resourceRules[action]
	if !ok {
		g.why = "no resource narrower than * is known for it"
		return g
	}
	lits := stepLiterals{step: s}
	scope := arnScope{partition: partition, region: lits.region()}
	g.resources, g.why = rule(lits, scope)
	return g
}

// iamGroup is the IAM actions of one service that share resources and a condition: one
// statement.
type iamGroup struct {
	service   string
	resources []string
	condition iamCondition
	actions   []string
}

// plain reports whether the group is granted on any resource without a condition.
func (g *iamGroup) plain() bool {
	return g.condition == nil && len(g.resources) == 1 && g.resources[0] == anyResource
}

// iamDocumentOf turns the needs into a policy: one statement per group, named after its
// service.
func iamDocumentOf(needs []*iamNeed) iamDocument {
	groups := groupNeeds(needs)
	scopedCount := map[string]int{}
	for _, g := range groups {
		if !g.plain() {
			scopedCount[g.service]++
		}
	}
	doc := iamDocument{Version: iamPolicyVersion, Statement: []iamStatement{}}
	scoped := map[string]int{}
	for _, g := range groups {
		st := iamStatement{Sid: serviceSid(g.service), Effect: "Allow", Action: g.actions,
			Resource: g.resources, Condition: g.condition}
		if len(g.resources) == 1 && g.resources[0] == anyResource {
			st.Resource = anyResource
		}
		if !g.plain() {
			scoped[g.service]++
			st.Sid += "Scoped"
			if scopedCount[g.service] > 1 {
				st.Sid += fmt.Sprint(scoped[g.service])
			}
		}
		doc.Statement = append(doc.Statement, st)
	}
	return doc
}

// groupNeeds groups the needs by service, resources and condition; per service, the
// group on any resource comes first.
func groupNeeds(needs []*iamNeed) []*iamGroup {
	var groups []*iamGroup
	index := map[string]*iamGroup{}
	for _, n := range needs {
		service, _, _ := strings.Cut(n.action, ":")
		res, cond := n.resourceList(), n.finalCondition()
		cj, _ := json.Marshal(cond)
		key := service + "\x00" + strings.Join(res, "\x00") + "\x00" + string(cj)
		g := index[key]
		if g == nil {
			g = &iamGroup{service: service, resources: res, condition: cond}
			index[key] = g
			groups = append(groups, g)
		}
		g.actions = append(g.actions, n.action)
	}
	slices.SortStableFunc(groups, func(a, b *iamGroup) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		switch {
		case a.plain() == b.plain():
			return 0
		case a.plain():
			return -1
		}
		return 1
	})
	return groups
}

// sidNames spell the services in statement ids as AWS does.
var sidNames = map[string]string{
	"acm": "ACM", "cloudfront": "CloudFront", "ecs": "ECS", "elasticloadbalancing": "ELB",
	"kms": "KMS", "lambda": "Lambda", "logs": "Logs", "route53": "Route53", "ssm": "SSM",
}

var notAlnum = regexp.MustCompile(`[^A-Za-z0-9]`)

func serviceSid(service string) string {
	if s, ok := sidNames[service]; ok {
		return s
	}
	s := notAlnum.ReplaceAllString(service, "")
	if s == "" {
		return "Service"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// explainIAM writes, for each IAM action, its resources and the steps that need it.
func explainIAM(w io.Writer, needs []*iamNeed) {
	for _, n := range needs {
		fmt.Fprintf(w, "%s on %s\n", n.action, strings.Join(n.resourceList(), ", "))
		if n.condition != nil && !n.uniform {
			fmt.Fprintln(w, "  without a condition: the steps ask for different ones")
		}
		for _, g := range n.grants {
			fmt.Fprintf(w, "  %s: %s\n", g.step, g.why)
		}
	}
}

// actionConditions are conditions that every call an action makes meets, keyed by the
// action's name and the IAM action: route53.ensure_records only ever sends UPSERT, and
// ssm.certificate needs the key only for SSM to decrypt a SecureString on its behalf.
var actionConditions = map[string]iamCondition{
	"route53.ensure_records route53:ChangeResourceRecordSets": {
		"ForAllValues:StringEquals": {"route53:ChangeResourceRecordSetsActions": {"UPSERT"}},
	},
	"ssm.certificate kms:Decrypt": {
		"StringLike": {"kms:ViaService": {"ssm.*"}},
	},
}

// arnScope is what the ARNs of a step's resources share.
type arnScope struct {
	partition string
	region    string // "*" unless the step names one literally
}

// resourceRule gives the ARNs a step's call can touch, or nil for any resource, with a
// sentence saying why.
type resourceRule func(l stepLiterals, s arnScope) ([]string, string)

// resourceRules narrow the IAM actions that take resource-level permissions. An IAM
// action missing here is granted on any resource.
var resourceRules = map[string]resourceRule{
	"acm:DescribeCertificate":             literalARN("arn"),
	"elasticloadbalancing:ModifyListener": literalARN("listener_arn"),
	"route53:GetHostedZone":               hostedZone,
	"route53:ListResourceRecordSets":      hostedZone,
	"route53:ChangeResourceRecordSets":    hostedZone,
	"route53:GetChange":                   route53Changes,
	"cloudfront:GetDistribution":          distribution,
	"lambda:InvokeFunction":               lambdaFunction,
	"lambda:GetFunction":                  lambdaFunction,
	"lambda:GetFunctionConfiguration":     lambdaFunction,
	"ssm:GetParameter":                    ssmParameter,
	"ssm:GetParameters":                   ssmParameter,
	"ssm:GetParameterHistory":             ssmParameter,
	"logs:FilterLogEvents":                logGroup,
	"logs:GetLogEvents":                   logGroup,
	"logs:StartQuery":                     logGroup,
	"logs:DescribeLogStreams":             logGroup,
	"ecs:UpdateService":                   ecsService,
	"ecs:DescribeServices":                ecsService,
	"ecs:DescribeClusters":                ecsCluster,
}

// literalARN narrows to the ARN a step gives in param.
func literalARN(param string) resourceRule {
	return func(l stepLiterals, _ arnScope) ([]string, string) {
		vals, why := l.values(param)
		if vals == nil {
			return nil, why
		}
		for _, v := range vals {
			if !strings.HasPrefix(v, "arn:") {
				return nil, fmt.Sprintf("%s %q is not an ARN", param, v)
			}
		}
		return vals, "named by " + param
	}
}

func hostedZone(l stepLiterals, s arnScope) ([]string, string) {
	vals, why := l.values("zone_id")
	if vals == nil {
		return nil, why
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		id := strings.TrimPrefix(v, "/hostedzone/")
		out[i] = fmt.Sprintf("arn:%s:route53:::hostedzone/%s", s.partition, id)
	}
	return out, "named by zone_id"
}

func route53Changes(_ stepLiterals, s arnScope) ([]string, string) {
	arn := fmt.Sprintf("arn:%s:route53:::change/*", s.partition)
	return []string{arn}, "changes are the only resource GetChange takes"
}

func distribution(l stepLiterals, s arnScope) ([]string, string) {
	vals, why := l.values("distribution_id")
	if vals == nil {
		return nil, why
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = fmt.Sprintf("arn:%s:cloudfront::*:distribution/%s", s.partition, v)
	}
	return out, "named by distribution_id"
}

func lambdaFunction(l stepLiterals, s arnScope) ([]string, string) {
	vals, why := l.values("function", "function_name", "function_arn")
	if vals == nil {
		return nil, why
	}
	var out []string
	for _, v := range vals {
		switch {
		case strings.HasPrefix(v, "arn:"):
			out = append(out, v)
		case strings.Contains(v, ":"):
			return nil, fmt.Sprintf("function %q is a partial ARN or has a qualifier", v)
		default:
			// the bare function and its versions and aliases
			base := fmt.Sprintf("arn:%s:lambda:%s:*:function:%s", s.partition, s.region, v)
			out = append(out, base, base+":*")
		}
	}
	return out, "named by the function parameter"
}

func ssmParameter(l stepLiterals, s arnScope) ([]string, string) {
	vals, why := l.values("name", "names", "parameter", "parameters")
	if vals == nil {
		return nil, why
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		if strings.HasPrefix(v, "arn:") {
			out[i] = v
			continue
		}
		name := strings.TrimPrefix(v, "/")
		out[i] = fmt.Sprintf("arn:%s:ssm:%s:*:parameter/%s", s.partition, s.region, name)
	}
	return out, "named by the parameter name"
}

func logGroup(l stepLiterals, s arnScope) ([]string, string) {
	vals, why := l.values("log_group", "log_groups", "log_group_name")
	if vals == nil {
		return nil, why
	}
	var out []string
	for _, v := range vals {
		base := fmt.Sprintf("arn:%s:logs:%s:*:log-group:%s", s.partition, s.region, v)
		out = append(out, base, base+":*")
	}
	return out, "named by the log group"
}

func ecsService(l stepLiterals, s arnScope) ([]string, string) {
	clusters, why := l.values("cluster")
	if clusters == nil {
		return nil, why
	}
	services, _ := l.values("services", "service")
	if services == nil {
		services = []string{"*"}
	}
	var out []string
	for _, c := range clusters {
		for _, svc := range services {
			out = append(out, fmt.Sprintf("arn:%s:ecs:%s:*:service/%s/%s",
				s.partition, s.region, lastPart(c), lastPart(svc)))
		}
	}
	return out, "named by cluster and services"
}

func ecsCluster(l stepLiterals, s arnScope) ([]string, string) {
	clusters, why := l.values("cluster")
	if clusters == nil {
		return nil, why
	}
	out := make([]string, len(clusters))
	for i, c := range clusters {
		out[i] = fmt.Sprintf("arn:%s:ecs:%s:*:cluster/%s", s.partition, s.region, lastPart(c))
	}
	return out, "named by cluster"
}

// lastPart is the name at the end of an ARN ("arn:...:cluster/cabal-mail"), or name.
func lastPart(name string) string {
	if !strings.HasPrefix(name, "arn:") {
		return name
	}
	return name[strings.LastIndex(name, "/")+1:]
}

// stepLiterals reads the parameters a step fixes in its policy file: literal values, or
// the action's declared defaults when the step leaves a parameter out. A template or an
// expression is only known at run time.
type stepLiterals struct {
	step *policies.Step
}

// values returns the literal strings of the first of names the step gives, or of its
// default, or nil and why not.
func (l stepLiterals) values(names ...string) ([]string, string) {
	for _, name := range names {
		raw, fixed := l.step.Literal(name)
		if !fixed {
			if _, given := l.step.With[name]; given {
				return nil, name + " is a template or an expression, known only at run time"
			}
			continue
		}
		vals := literalStrings(raw)
		if len(vals) == 0 {
			return nil, name + " is empty"
		}
		return vals, ""
	}
	return nil, "the step does not name it (" + strings.Join(names, ", ") + ")"
}

// region is the step's literal region, or "*".
func (l stepLiterals) region() string {
	vals, _ := l.values("region")
	if len(vals) != 1 {
		return "*"
	}
	return vals[0]
}

// literalStrings returns a converted literal parameter as strings: a string, or a list.
func literalStrings(raw any) []string {
	switch v := raw.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []string:
		return v
	}
	return nil
}
