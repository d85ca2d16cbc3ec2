// Package conformance checks the Mailchimp emulator against Mailchimp's
// official client libraries: node_test.go drives it with the official Node
// client (@mailchimp/mailchimp_marketing) from conformance/node.
package conformance
