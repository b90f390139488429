"""A scenario file: models, loader, schema, expectation grammar, units and physics."""
