int cli_dummy_run;
