from courier.cli import main

main()
