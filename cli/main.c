int cli_dummy_main;
