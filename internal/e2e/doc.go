// Package e2e holds end-to-end tests: the example functions built as real binaries, deployed
// into the real Pulsar Functions worker with the real pulsar-admin, and driven through real
// topics. Its tests need the integration build tag and a running standalone (make pulsar-up).
package e2e
