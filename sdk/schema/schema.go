// Package schema turns a plugin's config schema (sent over the wire) into
// decoding of its HCL `config {}` block, with diagnostics that point at the
// file, line and column of every mistake.
package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Decode decodes body against s into the JSON object SetConfig takes, with
// every attribute present (defaults filled in). Unknown attributes, wrong
// types, values outside one_of and missing required attributes are
// diagnostics at their location. body may be nil (no `config {}` block).
func Decode(body hcl.Body, s *pb.ConfigSchema, missing hcl.Range) ([]byte, hcl.Diagnostics) {
	out := map[string]any{}
	var diags hcl.Diagnostics
	attrs := map[string]*hcl.Attribute{}
	if body != nil {
		bs := &hcl.BodySchema{}
		for _, a := range s.GetAttributes() {
			bs.Attributes = append(bs.Attributes, hcl.AttributeSchema{Name: a.GetName()})
		}
		content, d := body.Content(bs)
		diags = append(diags, d...)
		if content != nil {
			attrs = content.Attributes
		}
	}
	for _, a := range s.GetAttributes() {
		attr, ok := attrs[a.GetName()]
		if !ok {
			if a.GetRequired() {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Missing required argument",
					Detail:   fmt.Sprintf("The argument %q is required: %s", a.GetName(), a.GetDescription()),
					Subject:  &missing,
				})
				continue
			}
			if a.GetDefaultJson() != "" {
				out[a.GetName()] = json.RawMessage(a.GetDefaultJson())
			} else {
				out[a.GetName()] = nil
			}
			continue
		}
		v, d := attr.Expr.Value(nil)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		rng := attr.Expr.Range()
		jv, err := Convert(a, v)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for " + a.GetName(),
				Detail:   err.Error(),
				Subject:  &rng,
			})
			continue
		}
		out[a.GetName()] = jv
	}
	if diags.HasErrors() {
		return nil, diags
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Encoding plugin config", Detail: err.Error(), Subject: &missing}}
	}
	return b, diags
}

// Defaults is Decode of an empty block: the configuration a plugin gets when
// the file says nothing. It fails when an attribute is required.
func Defaults(s *pb.ConfigSchema) ([]byte, error) {
	b, diags := Decode(nil, s, hcl.Range{Filename: "<defaults>"})
	if diags.HasErrors() {
		return nil, diags
	}
	return b, nil
}

// Convert turns one HCL value into the JSON value the plugin receives for
// attribute a.
func Convert(a *pb.Attribute, v cty.Value) (any, error) {
	if v.IsNull() {
		return nil, fmt.Errorf("%s must not be null", a.GetName())
	}
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("%s must be a literal value", a.GetName())
	}
	switch a.GetType() {
	case pb.AttributeType_ATTRIBUTE_TYPE_STRING:
		s, err := asString(v)
		if err != nil {
			return nil, err
		}
		if len(a.GetOneOf()) > 0 && !contains(a.GetOneOf(), s) {
			return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(quoteAll(a.GetOneOf()), ", "))
		}
		return s, nil
	case pb.AttributeType_ATTRIBUTE_TYPE_NUMBER:
		n, err := convert.Convert(v, cty.Number)
		if err != nil {
			return nil, fmt.Errorf("want a number, got %s", v.Type().FriendlyName())
		}
		f, _ := n.AsBigFloat().Float64()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("want a finite number")
		}
		return f, nil
	case pb.AttributeType_ATTRIBUTE_TYPE_BOOL:
		b, err := convert.Convert(v, cty.Bool)
		if err != nil {
			return nil, fmt.Errorf("want true or false, got %s", v.Type().FriendlyName())
		}
		return b.True(), nil
	case pb.AttributeType_ATTRIBUTE_TYPE_DURATION:
		s, err := asString(v)
		if err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("want a duration such as \"5s\" or \"250ms\": %v", err)
		}
		return int64(d), nil
	case pb.AttributeType_ATTRIBUTE_TYPE_BYTES:
		if v.Type() == cty.Number {
			f, _ := v.AsBigFloat().Float64()
			if f < 0 || f != math.Trunc(f) {
				return nil, fmt.Errorf("want a whole, non-negative number of bytes")
			}
			return uint64(f), nil
		}
		s, err := asString(v)
		if err != nil {
			return nil, err
		}
		return ParseBytes(s)
	case pb.AttributeType_ATTRIBUTE_TYPE_LIST_OF_STRING:
		l, err := convert.Convert(v, cty.List(cty.String))
		if err != nil {
			return nil, fmt.Errorf("want a list of strings, got %s", v.Type().FriendlyName())
		}
		out := []string{}
		for _, e := range l.AsValueSlice() {
			out = append(out, e.AsString())
		}
		return out, nil
	}
	return nil, fmt.Errorf("attribute %s has an unknown type in the plugin's schema", a.GetName())
}

func asString(v cty.Value) (string, error) {
	if v.Type() != cty.String {
		return "", fmt.Errorf("want a string, got %s", v.Type().FriendlyName())
	}
	return v.AsString(), nil
}

var byteUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": 1000, "kb": 1000, "m": 1000 * 1000, "mb": 1000 * 1000, "g": 1000 * 1000 * 1000, "gb": 1000 * 1000 * 1000,
	"t": 1000 * 1000 * 1000 * 1000, "tb": 1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseBytes parses sizes such as "512MiB", "4GiB", "1.5GiB", "2GB" or
// "1048576".
func ParseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("want a size such as \"512MiB\" or \"4GiB\", got %q", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("want a size such as \"512MiB\" or \"4GiB\", got %q", s)
	}
	b := f * float64(mult)
	if b != math.Trunc(b) || b > math.MaxUint64/2 {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	return uint64(b), nil
}

// FieldDiagnostics places a plugin's field errors on the attributes of body
// they name, or on fallback when the attribute is not written in the file.
func FieldDiagnostics(errs sdk.FieldErrors, body hcl.Body, fallback hcl.Range, plugin string) hcl.Diagnostics {
	ranges := map[string]hcl.Range{}
	if body != nil {
		if attrs, _ := body.JustAttributes(); attrs != nil {
			for name, a := range attrs {
				ranges[name] = a.Expr.Range()
			}
		}
	}
	var diags hcl.Diagnostics
	for _, e := range errs {
		r, ok := ranges[e.Field]
		if !ok {
			r = fallback
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Plugin %s rejects %s", plugin, e.Field),
			Detail:   e.Message,
			Subject:  &r,
		})
	}
	return diags
}

// Names returns the schema's attribute names, sorted (for documentation).
func Names(s *pb.ConfigSchema) []string {
	var n []string
	for _, a := range s.GetAttributes() {
		n = append(n, a.GetName())
	}
	sort.Strings(n)
	return n
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func quoteAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = strconv.Quote(s)
	}
	return out
}
