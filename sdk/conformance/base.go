package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// unknownField is a setting no plugin has: a plugin that accepts it would
// also silently ignore a misspelt one.
const unknownField = "vertigo_conformance_unknown_field"

var baseGroup = group{
	name: "base",
	specs: []spec{
		{name: "plugin_info", check: checkPluginInfo},
		{name: "config_schema", check: checkConfigSchema},
		// The name predates Options.ConfigJSON, which it sends when set.
		{name: "set_config_defaults", check: checkSetConfig},
		{name: "set_config_unknown_field", check: checkSetConfigUnknownField},
		{name: "health", check: checkHealth},
		{name: "capabilities", check: checkCapabilities},
	},
}

func checkPluginInfo(_ context.Context, s *session) error {
	switch {
	case s.info.GetName() == "":
		return errors.New("name is empty")
	case s.info.GetKind() != s.kind:
		return fmt.Errorf("kind is %s, want %s", sdk.KindName(s.info.GetKind()), sdk.KindName(s.kind))
	case s.info.GetPluginVersion() == "":
		return errors.New("plugin_version is empty")
	}
	_, err := sdk.Negotiate(sdk.APIVersions, s.info.GetApiVersions(), s.info.GetName())
	return err
}

func checkConfigSchema(_ context.Context, s *session) error {
	if s.schemaErr != nil {
		return s.schemaErr
	}
	seen := map[string]bool{}
	for i, a := range s.schema.GetAttributes() {
		if a.GetName() == "" {
			return fmt.Errorf("attributes[%d].name: empty", i)
		}
		if seen[a.GetName()] {
			return fmt.Errorf("attributes[%d].name: %q appears twice", i, a.GetName())
		}
		seen[a.GetName()] = true
		if err := checkAttribute(a); err != nil {
			return fmt.Errorf("attributes[%d] (%s): %w", i, a.GetName(), err)
		}
	}
	_, err := s.config()
	return err
}

// checkAttribute checks that a's default is a JSON value of a's type, in the
// form the plugin receives, and one of its allowed values.
func checkAttribute(a *pb.Attribute) error {
	want, ok := defaultTypes[a.GetType()]
	if !ok {
		return fmt.Errorf("type: unknown attribute type %v", a.GetType())
	}
	if len(a.GetOneOf()) > 0 && a.GetType() != pb.AttributeType_ATTRIBUTE_TYPE_STRING {
		return errors.New("one_of: only string attributes may list allowed values")
	}
	if a.GetDefaultJson() == "" {
		return nil
	}
	def := want()
	if err := json.Unmarshal([]byte(a.GetDefaultJson()), def); err != nil {
		return fmt.Errorf("default_json %s: not a %s: %w", a.GetDefaultJson(), a.GetType(), err)
	}
	if s, ok := def.(*string); ok && len(a.GetOneOf()) > 0 && !slices.Contains(a.GetOneOf(), *s) {
		return fmt.Errorf("default_json %s: not one of %q", a.GetDefaultJson(), a.GetOneOf())
	}
	return nil
}

// defaultTypes gives, per attribute type, a Go value its default must decode
// into (durations and sizes travel as whole numbers).
var defaultTypes = map[pb.AttributeType]func() any{
	pb.AttributeType_ATTRIBUTE_TYPE_STRING:         func() any { return new(string) },
	pb.AttributeType_ATTRIBUTE_TYPE_NUMBER:         func() any { return new(float64) },
	pb.AttributeType_ATTRIBUTE_TYPE_BOOL:           func() any { return new(bool) },
	pb.AttributeType_ATTRIBUTE_TYPE_DURATION:       func() any { return new(int64) },
	pb.AttributeType_ATTRIBUTE_TYPE_BYTES:          func() any { return new(uint64) },
	pb.AttributeType_ATTRIBUTE_TYPE_LIST_OF_STRING: func() any { return new([]string) },
}

// defaults is the configuration of an empty `config {}` block.
func (s *session) defaults() ([]byte, error) {
	if s.schemaErr != nil {
		return nil, s.schemaErr
	}
	b, err := schema.Defaults(s.schema)
	if err != nil {
		return nil, fmt.Errorf("decoding defaults: %w", err)
	}
	return b, nil
}

func checkSetConfig(ctx context.Context, s *session) error {
	if err := s.configure(ctx); err != nil {
		return err
	}
	if err := s.configure(ctx); err != nil {
		return fmt.Errorf("second time: %w", err)
	}
	return nil
}

func checkSetConfigUnknownField(ctx context.Context, s *session) error {
	base, err := s.config()
	if err != nil {
		return err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(base, &cfg); err != nil {
		return fmt.Errorf("decoding the configuration %s: %w", base, err)
	}
	cfg[unknownField] = json.RawMessage("true")
	withUnknown, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	version, err := sdk.Negotiate(sdk.APIVersions, s.info.GetApiVersions(), s.info.GetName())
	if err != nil {
		return err
	}
	refused := s.c.Configure(ctx, withUnknown, version) != nil
	// Whatever the plugin did, leave it configured for the specs that follow.
	if err := s.configure(ctx); err != nil {
		return fmt.Errorf("restoring the configuration: %w", err)
	}
	if !refused {
		return fmt.Errorf("SetConfig accepted unknown field %q: plugins must refuse settings they do not know", unknownField)
	}
	return nil
}

func checkHealth(ctx context.Context, s *session) error {
	if err := s.configure(ctx); err != nil {
		return err
	}
	return s.c.Healthy(ctx)
}

func checkCapabilities(_ context.Context, s *session) error {
	if s.capsErr != nil {
		return fmt.Errorf("Capabilities: %w", s.capsErr)
	}
	if s.caps[""] {
		return errors.New("an empty capability name")
	}
	return nil
}
