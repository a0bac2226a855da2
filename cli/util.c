int cli_dummy_util;
