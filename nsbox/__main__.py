from nsbox.cli import launch

launch()
