# Manual pages.
dist_man_MANS += man/mltk.1 man/mltk.ini.5 man/mltk-plugin.7
