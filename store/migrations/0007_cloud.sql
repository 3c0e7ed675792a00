-- Functions the cloud controller placed on this device (agent/cloudapply.go):
-- the deployment revision applied, so that a desired set naming the same
-- revision again changes nothing, and a function the controller no longer
-- names is removed while locally deployed ones are left alone.
CREATE TABLE cloud_functions (
	name     TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
	revision INTEGER NOT NULL CHECK (revision > 0),
	digest   TEXT NOT NULL
);
