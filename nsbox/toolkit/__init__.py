"""The namespace toolkit behind ``nsbox ns``: unshare, enter, ls."""
