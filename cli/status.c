int cli_dummy_status;
