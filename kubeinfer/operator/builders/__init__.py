"""Pure builders of the objects the operator creates: one module per resource, plain dicts, no cluster needed."""
