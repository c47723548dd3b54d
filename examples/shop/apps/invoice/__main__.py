from invoice.app import main

main()
