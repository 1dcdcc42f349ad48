// Package config owns hermesd's settings: the Config struct, its defaults,
// loading from command-line flags, the environment, $HERMES_HOME/.env and
// $HERMES_HOME/config.yaml (models, MCP servers, every setting), and
// Validate, which refuses unsafe or impossible settings before anything
// binds, naming the file and line of a value from config.yaml.
//
// It may import the root package, the standard library,
// github.com/joho/godotenv, which reads .env files as the tools that write
// them do, and github.com/goccy/go-yaml, whose syntax tree keeps each
// value's line.
package config
