package store

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

// TestCloneCoversReferenceFields fails when model gains a field that
// shares memory (slice, map, pointer) which the store's clones do not copy:
// callers could then change the store behind its back.
func TestCloneCoversReferenceFields(t *testing.T) {
	for typ, cloned := range map[reflect.Type][]string{
		reflect.TypeFor[model.Node]():     nil,
		reflect.TypeFor[model.VM]():       {"ScalerState", "Handle", "LastDecision"},
		reflect.TypeFor[model.Decision](): nil,
		reflect.TypeFor[model.Size]():     nil,
		reflect.TypeFor[model.Bounds]():   nil,
	} {
		var shared []string
		for f := range typ.Fields() {
			switch f.Type.Kind() {
			case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func:
				shared = append(shared, f.Name)
			case reflect.Struct:
				require.Contains(t, []string{"Size", "Bounds", "Time"}, f.Type.Name(), "%s.%s: a struct the clone test does not check", typ.Name(), f.Name)
			}
		}
		require.ElementsMatch(t, cloned, shared, "%s: fields that share memory; update cloneVM and this list", typ.Name())
	}
}
