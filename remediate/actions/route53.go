package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"go.uber.org/zap"
)

// Route 53 records are compared and changed in two steps. route53.diff_records is
// read-only: it finds the zone and looks each record up on its own, so that it runs in
// every mode and its facts say exactly what is missing or different. route53.ensure_records
// is mutating: it upserts the records it is given, typically the diff's upserts, in one
// change batch. A dry-run plan therefore shows the exact change batch without the
// mutating action having to call AWS from its Request.

const (
	defaultRecordTTL      = 300
	defaultChangeWaitTime = 3 * time.Minute
	maxChangeComment      = 256
	hostedZonePrefix      = "/hostedzone/"
	changePrefix          = "/change/"
)

// dnsRecord is one record a step names: the record set of that name and type holding
// exactly this one value.
type dnsRecord struct {
	Name  string
	Type  string
	Value string
	TTL   int64 // 0 for the step's ttl
}

func (r dnsRecord) key() string { return normalizeDNSName(r.Name) + " " + r.Type }

func (r dnsRecord) object(ttl int64) map[string]any {
	if r.TTL > 0 {
		ttl = r.TTL
	}
	return map[string]any{"name": r.Name, "type": r.Type, "value": r.Value, "ttl": ttl}
}

// recordsParam declares the records parameter both Route 53 actions take.
func recordsParam(doc string) Param {
	return Param{Name: "records", Type: ObjectList, Required: true, Doc: doc +
		" Each is {name, type, value} with an optional ttl, such as the validation_records " +
		"of acm.describe; names compare without regard to case or a trailing dot."}
}

func ttlParam() Param {
	return Param{Name: "ttl", Type: Int, Default: int64(defaultRecordTTL),
		Doc: "The TTL of records that do not give their own; defaults to 300 seconds."}
}

// parseRecords checks the records parameter. A record named twice with the same value
// counts once; with two values it is refused, since it could hold only one of them.
func parseRecords(objs []map[string]any) ([]dnsRecord, error) {
	if len(objs) == 0 {
		return nil, Invalid("records: at least one record is required")
	}
	var out []dnsRecord
	first := map[string]int{}
	for i, o := range objs {
		r, err := parseRecord(o)
		if err != nil {
			return nil, Invalid("records[%d]: %w", i, err)
		}
		if j, dup := first[r.key()]; dup {
			if !sameRecordValue(r.Type, out[j].Value, r.Value) {
				return nil, Invalid("records[%d]: %s %s is also given with value %q", i, r.Name, r.Type, out[j].Value)
			}
			continue
		}
		first[r.key()] = len(out)
		out = append(out, r)
	}
	return out, nil
}

func parseRecord(o map[string]any) (dnsRecord, error) {
	for k := range o {
		if !slices.Contains([]string{"name", "type", "value", "ttl"}, k) {
			return dnsRecord{}, fmt.Errorf("unknown key %q: a record has name, type, value and ttl", k)
		}
	}
	var r dnsRecord
	var err error
	if r.Name, err = requiredString(o, "name"); err != nil {
		return dnsRecord{}, err
	}
	if r.Type, err = requiredString(o, "type"); err != nil {
		return dnsRecord{}, err
	}
	r.Type = strings.ToUpper(r.Type)
	if r.Value, err = requiredString(o, "value"); err != nil {
		return dnsRecord{}, err
	}
	if v, ok := o["ttl"]; ok && v != nil {
		if r.TTL, err = recordTTL(v); err != nil {
			return dnsRecord{}, err
		}
	}
	return r, nil
}

func requiredString(o map[string]any, key string) (string, error) {
	s, ok := o[key].(string)
	if !ok || strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%s: required, a non-empty string", key)
	}
	return strings.TrimSpace(s), nil
}

func recordTTL(v any) (int64, error) {
	var ttl int64
	switch x := v.(type) {
	case int:
		ttl = int64(x)
	case int64:
		ttl = x
	case float64:
		ttl = int64(x)
		if float64(ttl) != x {
			ttl = -1
		}
	default:
		return 0, fmt.Errorf("ttl: want a whole number of seconds, got %v", v)
	}
	if ttl < 0 || ttl > 2147483647 {
		return 0, fmt.Errorf("ttl: %v is not a number of seconds from 0 to 2147483647", v)
	}
	return ttl, nil
}

// sameRecordValue compares two values of a record of type typ. The values of records
// that name a host compare as names do; others compare exactly.
func sameRecordValue(typ, a, b string) bool {
	switch typ {
	case "CNAME", "NS", "PTR", "DNAME":
		return normalizeDNSName(a) == normalizeDNSName(b)
	}
	return a == b
}

// NewRoute53DiffRecords returns the route53.diff_records action, which compares records
// with a hosted zone, looking each up on its own.
func NewRoute53DiffRecords(a *AWS) Action { return &route53Diff{aws: a} }

type route53Diff struct{ aws *AWS }

// Spec declares route53.diff_records.
func (d *route53Diff) Spec() Spec {
	return Spec{
		Name: "route53.diff_records",
		Doc: "Compares records with a public hosted zone and reports those missing or " +
			"holding another value. Each record is looked up on its own (ListResourceRecordSets " +
			"from its name and type, one item), so that the cost does not grow with the zone; " +
			"the zone is never listed. The zone is given by id, or found as the longest public " +
			"hosted zone whose name is zone, or, without zone, the first record's name, or a " +
			"parent of it. Records outside the zone are refused. Read-only: its upserts fact " +
			"feeds route53.ensure_records. IAM: route53:GetHostedZone is needed with zone_id, " +
			"route53:ListHostedZonesByName without.",
		Params: []Param{
			recordsParam("The records the zone must hold."),
			{Name: "zone_id", Type: String,
				Doc: "The hosted zone's id (Z0123456789ABC or /hostedzone/Z0123456789ABC)."},
			{Name: "zone", Type: String,
				Doc: "A name whose longest public hosted zone is used when zone_id is empty; " +
					"defaults to the first record's name."},
			ttlParam(),
		},
		Facts: []Fact{
			{Name: "zone_id", Type: String, Doc: "The hosted zone's id, without /hostedzone/."},
			{Name: "zone_name", Type: String, Doc: "The hosted zone's name, without the trailing dot."},
			{Name: "missing", Type: ObjectList,
				Doc: "The records with no record set of their name and type, each {name, type, value, ttl}."},
			{Name: "changed", Type: ObjectList,
				Doc: "The records whose record set holds something else, each {name, type, value, " +
					"ttl, current}, current listing the values found (an alias as ALIAS <target>)."},
			{Name: "upserts", Type: ObjectList,
				Doc: "The missing and changed records, each {name, type, value, ttl}: what " +
					"route53.ensure_records must upsert."},
			{Name: "in_sync", Type: Bool, Doc: "Whether every record is present and equal."},
		},
		// GetHostedZone is called with zone_id, ListHostedZonesByName without
		IAM: []string{"route53:ListResourceRecordSets", "route53:GetHostedZone", "route53:ListHostedZonesByName"},
	}
}

// route53DiffTarget is what a diff step asks for.
type route53DiffTarget struct {
	records []dnsRecord
	zoneID  string
	zone    string
	ttl     int64
}

func parseRoute53Diff(p Params) (route53DiffTarget, error) {
	records, err := parseRecords(p.Objects("records"))
	if err != nil {
		return route53DiffTarget{}, err
	}
	t := route53DiffTarget{records: records, zoneID: trimZoneID(p.String("zone_id")),
		zone: normalizeDNSName(p.String("zone")), ttl: p.Int("ttl")}
	if t.zoneID == "" && t.zone == "" {
		t.zone = normalizeDNSName(records[0].Name)
	}
	if t.ttl < 0 {
		return route53DiffTarget{}, Invalid("ttl %d: must not be negative", t.ttl)
	}
	return t, nil
}

func trimZoneID(id string) string {
	return strings.TrimPrefix(strings.TrimSpace(id), hostedZonePrefix)
}

// Request describes the lookups: the zone, then one ListResourceRecordSets per record.
func (d *route53Diff) Request(p Params, _ Env) (Request, error) {
	t, err := parseRoute53Diff(p)
	if err != nil {
		return Request{}, err
	}
	lookups := make([]map[string]any, len(t.records))
	for i, r := range t.records {
		lookups[i] = map[string]any{"StartRecordName": normalizeDNSName(r.Name), "StartRecordType": r.Type,
			"MaxItems": 1}
	}
	in := map[string]any{"Lookups": lookups}
	if t.zoneID != "" {
		in["HostedZoneId"] = t.zoneID
	} else {
		in["ZoneFoundFrom"] = t.zone
	}
	return Request{Service: "route53", Operation: "ListResourceRecordSets", Input: in}, nil
}

// Run finds the zone and looks every record up.
func (d *route53Diff) Run(ctx context.Context, p Params, _ Env) (Facts, error) {
	t, err := parseRoute53Diff(p)
	if err != nil {
		return nil, err
	}
	cfg, err := d.aws.globalConfig(ctx)
	if err != nil {
		return nil, err
	}
	client := route53.NewFromConfig(cfg)

	zone, err := resolveZone(ctx, client, t)
	if err != nil {
		return nil, err
	}
	for _, r := range t.records {
		if !inDomain(r.Name, zone.name) {
			return nil, Invalid("record %s is not in zone %s (%s)", r.Name, zone.name, zone.id)
		}
	}

	diff, err := diffRecords(ctx, client, zone.id, t)
	if err != nil {
		return nil, err
	}
	return diff.facts(zone), nil
}

// hostedZone is the zone a diff works in.
type hostedZone struct {
	id   string // without /hostedzone/
	name string // normalized
}

func resolveZone(ctx context.Context, client *route53.Client, t route53DiffTarget) (hostedZone, error) {
	if t.zoneID != "" {
		return getZone(ctx, client, t.zoneID)
	}
	return findPublicZone(ctx, client, t.zone)
}

func getZone(ctx context.Context, client *route53.Client, id string) (hostedZone, error) {
	out, err := client.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(id)})
	if err != nil {
		return hostedZone{}, awsError("getting hosted zone "+id, err)
	}
	if out.HostedZone == nil {
		return hostedZone{}, &StepError{Reason: ReasonFailed,
			Err: fmt.Errorf("getting hosted zone %s: the answer holds no zone", id)}
	}
	return hostedZone{
		id:   trimZoneID(aws.ToString(out.HostedZone.Id)),
		name: normalizeDNSName(aws.ToString(out.HostedZone.Name)),
	}, nil
}

// findPublicZone returns the public hosted zone with the longest name that is name or a
// parent of it, asking for each candidate name in turn, longest first.
func findPublicZone(ctx context.Context, client *route53.Client, name string) (hostedZone, error) {
	for cand := name; cand != ""; cand = parentName(cand) {
		zones, err := publicZonesNamed(ctx, client, cand)
		if err != nil {
			return hostedZone{}, err
		}
		switch len(zones) {
		case 0:
			continue
		case 1:
			return hostedZone{id: trimZoneID(aws.ToString(zones[0].Id)), name: cand}, nil
		}
		return hostedZone{}, Invalid("finding the hosted zone of %s: %d public zones are named %s; set zone_id",
			name, len(zones), cand)
	}
	return hostedZone{}, &StepError{Reason: ReasonNotFound,
		Err: fmt.Errorf("finding the hosted zone of %s: no public hosted zone is named after it or a parent", name)}
}

func parentName(name string) string {
	_, parent, _ := strings.Cut(name, ".")
	return parent
}

// publicZonesNamed lists the public zones called exactly name. Zones come sorted by
// name, so the first of another name ends the search.
func publicZonesNamed(ctx context.Context, client *route53.Client, name string) ([]r53types.HostedZone, error) {
	in := &route53.ListHostedZonesByNameInput{DNSName: aws.String(name), MaxItems: aws.Int32(10)}
	var found []r53types.HostedZone
	for {
		out, err := client.ListHostedZonesByName(ctx, in)
		if err != nil {
			return nil, awsError("listing hosted zones named "+name, err)
		}
		for _, z := range out.HostedZones {
			if normalizeDNSName(aws.ToString(z.Name)) != name {
				return found, nil
			}
			if z.Config == nil || !z.Config.PrivateZone {
				found = append(found, z)
			}
		}
		if !out.IsTruncated || out.NextDNSName == nil {
			return found, nil
		}
		in.DNSName, in.HostedZoneId = out.NextDNSName, out.NextHostedZoneId
	}
}

// recordDiff is what a diff found.
type recordDiff struct {
	missing, changed, upserts []map[string]any
}

func diffRecords(ctx context.Context, client *route53.Client, zoneID string, t route53DiffTarget) (recordDiff, error) {
	diff := recordDiff{missing: []map[string]any{}, changed: []map[string]any{}, upserts: []map[string]any{}}
	for _, r := range t.records {
		rs, err := lookupRecord(ctx, client, zoneID, r)
		if err != nil {
			return recordDiff{}, err
		}
		switch {
		case rs == nil:
			diff.missing = append(diff.missing, r.object(t.ttl))
		case !recordSetHolds(rs, r):
			changed := r.object(t.ttl)
			changed["current"] = recordSetValues(rs)
			diff.changed = append(diff.changed, changed)
		default:
			continue
		}
		diff.upserts = append(diff.upserts, r.object(t.ttl))
	}
	return diff, nil
}

// lookupRecord returns the record set of r's name and type, or nil when the zone has
// none. It asks for one record set from r's name and type on: the zone's first at or
// after that point in Route 53's order.
func lookupRecord(ctx context.Context, client *route53.Client, zoneID string, r dnsRecord,
) (*r53types.ResourceRecordSet, error) {
	out, err := client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String(zoneID),
		StartRecordName: aws.String(normalizeDNSName(r.Name)),
		StartRecordType: r53types.RRType(r.Type),
		MaxItems:        aws.Int32(1),
	})
	if err != nil {
		return nil, awsError(fmt.Sprintf("looking up %s %s in zone %s", r.Name, r.Type, zoneID), err)
	}
	if len(out.ResourceRecordSets) == 0 {
		return nil, nil
	}
	rs := out.ResourceRecordSets[0]
	if normalizeDNSName(aws.ToString(rs.Name)) != normalizeDNSName(r.Name) || string(rs.Type) != r.Type {
		// the next record in the zone's order: r's own is absent
		return nil, nil
	}
	return &rs, nil
}

func recordSetHolds(rs *r53types.ResourceRecordSet, r dnsRecord) bool {
	if rs.AliasTarget != nil || len(rs.ResourceRecords) != 1 {
		return false
	}
	return sameRecordValue(r.Type, aws.ToString(rs.ResourceRecords[0].Value), r.Value)
}

func recordSetValues(rs *r53types.ResourceRecordSet) []string {
	if rs.AliasTarget != nil {
		return []string{"ALIAS " + aws.ToString(rs.AliasTarget.DNSName)}
	}
	out := make([]string, len(rs.ResourceRecords))
	for i, v := range rs.ResourceRecords {
		out[i] = aws.ToString(v.Value)
	}
	return out
}

func (d recordDiff) facts(zone hostedZone) Facts {
	return Facts{
		"zone_id":   zone.id,
		"zone_name": zone.name,
		"missing":   d.missing,
		"changed":   d.changed,
		"upserts":   d.upserts,
		"in_sync":   len(d.upserts) == 0,
	}
}

// NewRoute53EnsureRecords returns the route53.ensure_records action, which upserts
// records in one change batch.
func NewRoute53EnsureRecords(a *AWS) Action {
	return &route53Ensure{aws: a, waitDelay: 2 * time.Second}
}

type route53Ensure struct {
	aws       *AWS
	waitDelay time.Duration // between GetChange calls while waiting
}

// Spec declares route53.ensure_records.
func (e *route53Ensure) Spec() Spec {
	return Spec{
		Name:    "route53.ensure_records",
		Mutates: true,
		Doc: "Upserts records in a hosted zone in one change batch, whose comment names the " +
			"run; it never deletes or changes any other record. Give it the upserts of a " +
			"route53.diff_records step, and run it only when there are some " +
			"(when: size(diff.upserts) > 0), so that only missing or different records are " +
			"written. The call is made once: it is not retried, even on throttling. It can " +
			"then wait for the change to reach every Route 53 server (INSYNC), which needs " +
			"route53:GetChange.",
		Params: []Param{
			recordsParam("The records to upsert."),
			{Name: "zone_id", Type: String, Required: true,
				Doc: "The hosted zone's id, such as the zone_id of route53.diff_records."},
			ttlParam(),
			{Name: "comment", Type: String,
				Doc: "The change batch's comment; defaults to one naming the run, policy and step."},
			{Name: "wait", Type: Bool, Default: false,
				Doc: "Whether to wait until the change is INSYNC; defaults to false."},
			{Name: "wait_timeout", Type: Duration, Default: defaultChangeWaitTime,
				Doc: "How long to wait for INSYNC; defaults to 3m. Running out of time is not a " +
					"failure: the change was made, and in_sync says false."},
		},
		Facts: []Fact{
			{Name: "change_id", Type: String, Doc: "The change's id, without /change/."},
			{Name: "status", Type: String, Doc: "PENDING or INSYNC."},
			{Name: "in_sync", Type: Bool, Doc: "Whether the change is known to be INSYNC."},
			{Name: "upserted", Type: StringList, Doc: "The names of the records upserted."},
		},
		// GetChange is called only to wait
		IAM: []string{"route53:ChangeResourceRecordSets", "route53:GetChange"},
	}
}

// changeInput is ChangeResourceRecordSets' input as plans and the audit log show it,
// with the API's own field names.
type changeInput struct {
	HostedZoneID string      `json:"HostedZoneId"`
	ChangeBatch  changeBatch `json:"ChangeBatch"`
}

type changeBatch struct {
	Comment string         `json:"Comment"`
	Changes []recordChange `json:"Changes"`
}

type recordChange struct {
	Action            string    `json:"Action"`
	ResourceRecordSet recordSet `json:"ResourceRecordSet"`
}

type recordSet struct {
	Name            string        `json:"Name"`
	Type            string        `json:"Type"`
	TTL             int64         `json:"TTL"`
	ResourceRecords []recordValue `json:"ResourceRecords"`
}

type recordValue struct {
	Value string `json:"Value"`
}

// buildChange makes the change batch a step asks for.
func buildChange(p Params, env Env) (changeInput, error) {
	records, err := parseRecords(p.Objects("records"))
	if err != nil {
		return changeInput{}, err
	}
	zoneID := trimZoneID(p.String("zone_id"))
	if zoneID == "" {
		return changeInput{}, Invalid("zone_id: required")
	}
	ttl := p.Int("ttl")
	if ttl <= 0 {
		ttl = defaultRecordTTL
	}
	in := changeInput{HostedZoneID: zoneID, ChangeBatch: changeBatch{Comment: changeComment(p, env)}}
	for _, r := range records {
		rs := recordSet{Name: r.Name, Type: r.Type, TTL: ttl, ResourceRecords: []recordValue{{Value: r.Value}}}
		if r.TTL > 0 {
			rs.TTL = r.TTL
		}
		in.ChangeBatch.Changes = append(in.ChangeBatch.Changes, recordChange{Action: "UPSERT", ResourceRecordSet: rs})
	}
	return in, nil
}

func changeComment(p Params, env Env) string {
	c := p.String("comment")
	if c == "" {
		c = fmt.Sprintf("remediator run %s (policy %s, step %s)", env.RunID, env.Policy, env.Step)
	}
	if len(c) > maxChangeComment {
		c = c[:maxChangeComment]
	}
	return c
}

func (in changeInput) sdk() *route53.ChangeResourceRecordSetsInput {
	out := &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(in.HostedZoneID),
		ChangeBatch:  &r53types.ChangeBatch{Comment: aws.String(in.ChangeBatch.Comment)},
	}
	for _, c := range in.ChangeBatch.Changes {
		rs := &r53types.ResourceRecordSet{
			Name: aws.String(c.ResourceRecordSet.Name),
			Type: r53types.RRType(c.ResourceRecordSet.Type),
			TTL:  aws.Int64(c.ResourceRecordSet.TTL),
		}
		for _, v := range c.ResourceRecordSet.ResourceRecords {
			rs.ResourceRecords = append(rs.ResourceRecords, r53types.ResourceRecord{Value: aws.String(v.Value)})
		}
		out.ChangeBatch.Changes = append(out.ChangeBatch.Changes,
			r53types.Change{Action: r53types.ChangeAction(c.Action), ResourceRecordSet: rs})
	}
	return out
}

func (in changeInput) names() []string {
	out := make([]string, len(in.ChangeBatch.Changes))
	for i, c := range in.ChangeBatch.Changes {
		out[i] = c.ResourceRecordSet.Name
	}
	return out
}

// Request returns the exact change batch Run sends.
func (e *route53Ensure) Request(p Params, env Env) (Request, error) {
	in, err := buildChange(p, env)
	if err != nil {
		return Request{}, err
	}
	return Request{Service: "route53", Operation: "ChangeResourceRecordSets", Input: in}, nil
}

// Run sends the change batch once, and waits for it when asked to.
func (e *route53Ensure) Run(ctx context.Context, p Params, env Env) (Facts, error) {
	in, err := buildChange(p, env)
	if err != nil {
		return nil, err
	}
	cfg, err := e.aws.globalConfig(ctx)
	if err != nil {
		return nil, err
	}
	client := route53.NewFromConfig(cfg)

	out, err := client.ChangeResourceRecordSets(ctx, in.sdk(), func(o *route53.Options) {
		o.Retryer = singleShot(o.Retryer)
	})
	if err != nil {
		return nil, awsError("changing records in zone "+in.HostedZoneID, err)
	}
	if out.ChangeInfo == nil {
		return nil, &StepError{Reason: ReasonFailed,
			Err: fmt.Errorf("changing records in zone %s: the answer holds no change", in.HostedZoneID)}
	}
	envLogger(env).Debug("records upserted", zap.String(keyZoneID, in.HostedZoneID),
		zap.String(keyChangeID, aws.ToString(out.ChangeInfo.Id)))

	status := string(out.ChangeInfo.Status)
	if p.Bool("wait") && status != string(r53types.ChangeStatusInsync) {
		status = e.waitInSync(ctx, client, aws.ToString(out.ChangeInfo.Id), p.Duration("wait_timeout"), env)
	}
	return Facts{
		"change_id": strings.TrimPrefix(aws.ToString(out.ChangeInfo.Id), changePrefix),
		"status":    status,
		"in_sync":   status == string(r53types.ChangeStatusInsync),
		"upserted":  in.names(),
	}, nil
}

// waitInSync polls the change until it is INSYNC or timeout passes, and returns the last
// status known. A failed wait is logged, not returned: the change was made.
func (e *route53Ensure) waitInSync(ctx context.Context, client *route53.Client, id string, timeout time.Duration,
	env Env,
) string {
	if timeout <= 0 {
		timeout = defaultChangeWaitTime
	}
	w := route53.NewResourceRecordSetsChangedWaiter(client, func(o *route53.ResourceRecordSetsChangedWaiterOptions) {
		o.MinDelay, o.MaxDelay = e.waitDelay, max(e.waitDelay, 30*time.Second)
	})
	out, err := w.WaitForOutput(ctx, &route53.GetChangeInput{Id: aws.String(id)}, timeout)
	if err != nil {
		envLogger(env).Warn("change not known to be in sync", zap.String(keyChangeID, id), zap.Error(err))
		return string(r53types.ChangeStatusPending)
	}
	if out.ChangeInfo == nil {
		return string(r53types.ChangeStatusPending)
	}
	return string(out.ChangeInfo.Status)
}
