// Package pipelinetest builds pipeline values for the tests of sinks and
// collectors: a consumer snapshot from rows as the admin API shows rings.
package pipelinetest
