from parley.cli import main

if __name__ == "__main__":  # not when a spawned child process (the guards' readers) imports it
    main()
