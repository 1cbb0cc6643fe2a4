package schema

import (
	"encoding/json"
	"time"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// Builders for plugin authors, so a schema reads as a table.

func attr(name string, t pb.AttributeType, def any, desc string) *pb.Attribute {
	a := &pb.Attribute{Name: name, Type: t, Description: desc}
	if def != nil {
		b, err := json.Marshal(def)
		if err != nil {
			panic("schema default for " + name + ": " + err.Error())
		}
		a.DefaultJson = string(b)
	}
	return a
}

// String is a string attribute; oneOf, when given, lists the allowed values.
func String(name, def, desc string, oneOf ...string) *pb.Attribute {
	a := attr(name, pb.AttributeType_ATTRIBUTE_TYPE_STRING, def, desc)
	a.OneOf = oneOf
	return a
}

// Number is a number attribute.
func Number(name string, def float64, desc string) *pb.Attribute {
	return attr(name, pb.AttributeType_ATTRIBUTE_TYPE_NUMBER, def, desc)
}

// Bool is a boolean attribute.
func Bool(name string, def bool, desc string) *pb.Attribute {
	return attr(name, pb.AttributeType_ATTRIBUTE_TYPE_BOOL, def, desc)
}

// Duration is written "5s" in HCL and received as int64 nanoseconds.
func Duration(name string, def time.Duration, desc string) *pb.Attribute {
	return attr(name, pb.AttributeType_ATTRIBUTE_TYPE_DURATION, int64(def), desc)
}

// Bytes is written "4GiB" in HCL and received as uint64 bytes.
func Bytes(name string, def uint64, desc string) *pb.Attribute {
	return attr(name, pb.AttributeType_ATTRIBUTE_TYPE_BYTES, def, desc)
}

// Required marks a attribute as required (its default is dropped).
func Required(a *pb.Attribute) *pb.Attribute {
	a.Required = true
	a.DefaultJson = ""
	return a
}

// Of assembles a schema.
func Of(attrs ...*pb.Attribute) *pb.ConfigSchema {
	return &pb.ConfigSchema{Attributes: attrs}
}
