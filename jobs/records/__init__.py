"""Records: the run history (:mod:`.history`), its MLflow copy (:mod:`.tracking`), and what the
notebooks read (:mod:`.analysis`)."""
