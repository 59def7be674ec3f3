"""The HTTP layer: schemas, thin routes, errors, body limits."""
