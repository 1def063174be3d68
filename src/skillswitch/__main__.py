from skillswitch.console import main

main()
