from nsbox.cli.main import entry

entry()
