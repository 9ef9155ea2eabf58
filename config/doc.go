// Package config owns remediator's main configuration file: its schema, its defaults
// (applied in Default, and nowhere else) and its validation, which reports every problem
// with file, line and field path. It reads no secrets: credentials stay in the files the
// configuration names, and the handler reads them.
package config
