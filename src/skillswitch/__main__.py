from skillswitch.cli import main

main()
