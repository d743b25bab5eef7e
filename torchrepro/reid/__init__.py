"""Person re-identification: data sets, model, losses and task."""
