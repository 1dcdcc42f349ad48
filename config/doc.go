// Package config owns hermesd's settings: the Config struct, its defaults,
// loading from the environment, $HERMES_HOME/.env and command-line flags, and
// Validate, which refuses unsafe or impossible settings before anything binds.
//
// It may import the root package, the standard library and
// github.com/joho/godotenv, which reads .env files as the tools that write
// them do.
package config
