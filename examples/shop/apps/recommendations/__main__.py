from recommendations.app import main

main()
